"""The model behind "predicted" (docs/model.md): operational laws and mean-value analysis, pure and fast."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import theory
from analysis.load import load_run
from analysis.summary import summarise
from analysis.theory import Shape
from target_app import catalogue

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "run"


def shape(**kw: object) -> Shape:
    base: dict[str, object] = dict(
        users=10, workers=2, threads=40, pool=10, wait_s=0.05, fanout=5, cpu_s=math.nan, cores=2.0
    )
    return Shape(**{**base, **kw})  # type: ignore[arg-type]


# -- the closed model -----------------------------------------------------------------------------------


def test_cpu_bound_cell_saturates_the_cores() -> None:
    one = theory.predict("cpu/sync-def", shape(users=1, cpu_s=0.01, cores=2.0))
    assert one.rps == pytest.approx(100, rel=0.01)
    assert one.mean_s == pytest.approx(0.01, rel=0.01)
    many = theory.predict("cpu/sync-def", shape(users=50, cpu_s=0.01, cores=2.0))
    assert many.rps == pytest.approx(200, rel=0.01)
    assert many.rps <= 200
    assert many.mean_s == pytest.approx(50 / 200, rel=0.01)
    assert many.bottleneck == "CPU"
    assert many.cpu_utilisation == pytest.approx(1.0, abs=0.01)


def test_the_gil_caps_the_cpu_family_at_one_core_per_worker_but_not_the_process_pool() -> None:
    gil = theory.predict("cpu/async", shape(users=50, workers=1, cpu_s=0.01, cores=4.0))
    pool = theory.predict("cpu/process-pool", shape(users=50, workers=1, cpu_s=0.01, cores=4.0))
    assert gil.rps == pytest.approx(100, rel=0.01)
    assert pool.rps == pytest.approx(400, rel=0.02)


def test_the_cpu_caps_an_async_style_well_below_users_over_wait() -> None:
    s = shape(users=100, wait_s=0.05, cpu_s=0.001, cores=1.0)
    p = theory.predict("sleep/async-await", s)
    assert p.capacity_rps == pytest.approx(1000)
    assert 0.95 * 1000 <= p.rps <= 1000  # far below U/d = 2000
    assert p.bottleneck == "CPU"
    assert p.mean_s == pytest.approx(100 / p.rps)
    few = theory.predict("sleep/async-await", shape(users=5, wait_s=0.05, cpu_s=0.001, cores=1.0))
    assert few.rps == pytest.approx(5 / (0.05 + 0.001), rel=0.01)
    assert few.bottleneck == "wait"


def test_without_a_measured_demand_an_await_style_is_users_over_wait() -> None:
    p = theory.predict("sleep/async-await", shape(users=100, cpu_s=math.nan))
    assert p.rps == pytest.approx(2000) and p.mean_s == pytest.approx(0.05)
    assert p.bottleneck == "wait" and math.isnan(p.cpu_utilisation)
    assert theory.predict("sleep/async-await", shape(cpu_s=0.0)).rps == pytest.approx(200)


def test_a_blocking_call_in_async_def_serves_one_request_per_worker() -> None:
    p = theory.predict("sleep/blocking-in-async", shape(users=100, workers=2, wait_s=0.05))
    assert p.rps == pytest.approx(40, rel=0.01)
    assert p.mean_s == pytest.approx(2.5, rel=0.01)
    assert p.bottleneck == "event loop"
    # the loop is also held for the request's own CPU: W/(d + D_cpu)
    with_cpu = theory.predict("sleep/blocking-in-async", shape(users=100, wait_s=0.05, cpu_s=0.01, cores=2.0))
    assert with_cpu.rps == pytest.approx(2 / 0.06, rel=0.01)
    assert catalogue.PREDICTIONS["blocking"].blocks_loop


def test_threadpool_tracks_users_over_wait_below_its_tokens_and_stops_at_them() -> None:
    few = theory.predict("sleep/sync-def", shape(users=10, workers=2, threads=40))
    assert few.rps == pytest.approx(10 / 0.05, rel=0.02)
    assert few.bottleneck == "wait"
    many = theory.predict("sleep/sync-def", shape(users=400, workers=2, threads=40))
    assert many.rps == pytest.approx(80 / 0.05, rel=0.01) and many.rps <= 1600
    assert many.bottleneck == "threadpool"


@pytest.mark.parametrize(
    "style, kw, limit, station",
    [
        ("db/asyncpg", dict(pool=5), 2 * 5, "db pool"),
        ("db/sync-def", dict(pool=5, threads=40), 2 * 5, "db pool"),
        ("db/sync-def", dict(pool=50, threads=8), 2 * 8, "threadpool"),
        ("db/blocking-in-async", {}, 2, "event loop"),
    ],
)
def test_each_pool_is_its_own_limit(style: str, kw: dict, limit: int, station: str) -> None:
    p = theory.predict(style, shape(users=500, **kw))
    assert p.rps == pytest.approx(limit / 0.05, rel=0.01)
    assert p.bottleneck == station


def test_fanout_sequential_holds_k_waits_and_gather_one() -> None:
    seq = theory.predict("fanout/sequential", shape(users=10, fanout=4))
    gather = theory.predict("fanout/gather", shape(users=10, fanout=4))
    assert seq.rps == pytest.approx(10 / 0.2) and seq.mean_s == pytest.approx(0.2)
    assert gather.rps == pytest.approx(10 / 0.05)


def test_fractional_users_interpolate_between_whole_populations() -> None:
    s = dict(wait_s=0.05, cpu_s=0.01, cores=1.0)
    low, mid, high = (theory.predict("sleep/async-await", shape(users=u, **s)).rps for u in (3, 3.5, 4))
    assert low < mid < high


def test_nothing_to_predict_from() -> None:
    assert math.isnan(theory.predict("sleep/async-await", shape(users=math.nan)).rps)
    assert math.isnan(theory.predict("cpu/async", shape(cpu_s=math.nan)).rps)
    assert math.isnan(theory.predict("sleep/async-await", shape(wait_s=math.nan)).rps)
    assert theory.predict("cpu/async", shape(cpu_s=math.nan)).bottleneck == ""


def test_a_fraction_of_a_core_is_one_slower_core() -> None:
    half = theory.predict("cpu/process-pool", shape(users=50, cpu_s=0.01, cores=0.5))
    assert half.rps == pytest.approx(50, rel=0.01)
    just = theory.predict("cpu/process-pool", shape(users=50, cpu_s=0.01, cores=1.5))
    assert just.rps == pytest.approx(150, rel=0.01)


# -- the bounds hold everywhere -------------------------------------------------------------------------


def test_mva_never_beats_the_asymptotic_bounds_on_random_shapes() -> None:
    rng = np.random.default_rng(20261125)
    styles = [s.id for s in catalogue.STYLES]
    for _ in range(300):
        style = str(rng.choice(styles))
        s = shape(
            users=int(rng.integers(1, 300)),
            workers=int(rng.integers(1, 9)),
            threads=int(rng.integers(1, 60)),
            pool=int(rng.integers(1, 20)),
            wait_s=float(rng.uniform(0.001, 0.5)),
            fanout=int(rng.integers(1, 10)),
            cpu_s=float(rng.choice([math.nan, rng.uniform(1e-4, 0.05)])),
            cores=float(rng.uniform(0.2, 8)),
        )
        p = theory.predict(style, s)
        stations = theory.network(style, s)
        if not stations:
            assert math.isnan(p.rps)
            continue
        total = sum(st.demand / min(1.0, st.servers) for st in stations)
        capacity = min(st.capacity for st in stations)
        assert p.rps <= min(s.users / total, capacity) * (1 + 1e-9), (style, s, p)
        assert p.rps >= 0.5 * min(s.users / total, capacity), (style, s, p)  # and not absurdly far below
        assert p.mean_s == pytest.approx(s.users / p.rps)  # response-time law, Z = 0
        assert all(0 <= u <= 1 + 1e-9 for u in p.utilisation.values())  # utilisation law
        more = theory.predict(style, Shape(**{**s.__dict__, "users": s.users + 5}))
        assert more.rps >= p.rps - 1e-9  # more users never lower the throughput


# -- the open model -------------------------------------------------------------------------------------


def test_erlang_c_matches_known_values_and_is_continuous_in_the_servers() -> None:
    assert theory.erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: the utilisation
    assert theory.erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert theory.erlang_c(1.999999, 1.0) == pytest.approx(1 / 3, rel=1e-4)
    assert theory.erlang_c(2.000001, 1.0) == pytest.approx(1 / 3, rel=1e-4)
    assert theory.erlang_c(1.5, 1.0) > theory.erlang_c(2, 1.0) > theory.erlang_c(2.5, 1.0)


def test_open_model_below_saturation() -> None:
    s = shape(users=math.nan, model="open", arrival_rate=50.0, cpu_s=0.01, cores=1.0)
    p = theory.predict("cpu/async", s)
    assert not p.overloaded
    assert p.rps == pytest.approx(50)
    assert p.cpu_utilisation == pytest.approx(0.5)
    assert p.mean_s == pytest.approx(0.01 / (1 - 0.5))  # M/M/1
    wait = theory.predict("sleep/async-await", shape(model="open", arrival_rate=100.0, cpu_s=0.001, cores=1.0))
    assert wait.mean_s == pytest.approx(0.05 + 0.001 / (1 - 0.1))  # the wait is a delay
    assert wait.bottleneck == "wait"


def test_open_model_at_and_beyond_saturation_is_overloaded() -> None:
    s = shape(model="open", arrival_rate=150.0, cpu_s=0.01, cores=1.0)
    p = theory.predict("cpu/async", s)
    assert p.overloaded and math.isinf(p.mean_s)
    assert p.rps == pytest.approx(100)  # the capacity
    assert p.bottleneck == "CPU"
    loop = theory.predict("sleep/blocking-in-async", shape(model="open", arrival_rate=41.0))
    assert loop.overloaded and loop.bottleneck == "event loop" and loop.rps == pytest.approx(40)
    assert not theory.predict("sleep/blocking-in-async", shape(model="open", arrival_rate=39.0)).overloaded


# -- calibration ----------------------------------------------------------------------------------------

PROBES = {
    "method": "a low-load probe per style",
    "probes": [
        {"style": "sleep/async-await", "work": 200000, "fanout": 5, "wait_ms": 50, "cpu_s_per_request": 0.0006},
        {"style": "cpu/async", "work": 100000, "fanout": 5, "cpu_s_per_request": 0.004},
        {"style": "cpu/async", "work": 200000, "fanout": 5, "cpu_s_per_request": 0.008},
        {"style": "fanout/gather", "work": 200000, "fanout": 5, "cpu_s_per_request": 0.003},
        {"style": "fanout/gather", "work": 200000, "fanout": 10, "cpu_s_per_request": 0.006},
    ],
}


def test_demand_from_calibration_probes() -> None:
    cell = {"work": 200000, "fanout": 5, "wait_ms": 100}
    assert theory.demand_for(PROBES, "sleep/async-await", cell) == 0.0006  # wait_ms is not matched on
    assert theory.demand_for(PROBES, "cpu/async", cell) == 0.008
    assert theory.demand_for(PROBES, "cpu/async", {**cell, "work": 100000}) == 0.004
    assert math.isnan(theory.demand_for(PROBES, "cpu/async", {**cell, "work": 5}))
    assert theory.demand_for(PROBES, "fanout/gather", {**cell, "fanout": 10}) == 0.006
    assert theory.demand_for(PROBES, "sleep/async-await", {**cell, "fanout": 10}) == 0.0006
    assert math.isnan(theory.demand_for(PROBES, "sleep/sync-def", cell))


def test_demand_from_an_old_run_is_the_cpu_family_only() -> None:
    old = {"cpu_s_per_request": {"200000": 0.0083}}
    assert theory.demand_for(old, "cpu/sync-def", {"work": 200000}) == 0.0083
    assert math.isnan(theory.demand_for(old, "cpu/sync-def", {"work": 100000}))
    assert math.isnan(theory.demand_for(old, "sleep/async-await", {"work": 200000}))
    assert math.isnan(theory.demand_for({}, "cpu/async", {"work": 200000}))
    assert math.isnan(theory.demand_for(None, "cpu/async", {"work": 200000}))


# -- the table ------------------------------------------------------------------------------------------


def cell(**kw: object) -> dict:
    return {
        "server_workers": 2,
        "threadpool_tokens": 40,
        "db_pool_size": 10,
        "wait_ms": 50,
        "fanout": 5,
        "work": 200000,
        **kw,
    }


def test_add_predictions_uses_the_cores_the_generator_left() -> None:
    table = pd.DataFrame(
        [
            dict(cell="a", style="sleep/async-await", style_users=100, model="closed", arrival_rate=50.0,
                 rps=900.0, mean_ms=110.0, p50_ms=100.0, together=False),
            dict(cell="b", style="sleep/async-await", style_users=100, model="closed", arrival_rate=50.0,
                 rps=1500.0, mean_ms=66.0, p50_ms=60.0, together=False),
            dict(cell="ui", style="sleep/async-await", style_users=math.nan, model="closed", arrival_rate=math.nan,
                 rps=10.0, mean_ms=50.0, p50_ms=50.0, together=False),
        ]
    )  # fmt: skip
    cells = {"a": cell(generator_cpu_cores=1.5), "b": cell(), "ui": {"server_workers": 2}}
    out = theory.add_predictions(table, cells, PROBES, machine_cores=2)
    a, b, ui = out.to_dict("records")
    assert a["predicted_rps"] == pytest.approx(
        theory.predict("sleep/async-await", shape(users=100, cpu_s=0.0006, cores=0.5)).rps
    )
    assert a["predicted_rps"] <= 0.5 / 0.0006 * (1 + 1e-9) and a["predicted_bottleneck"] == "CPU"
    assert b["predicted_rps"] > a["predicted_rps"]  # two cores, none taken by the generator
    assert a["predicted_mean_ms"] == pytest.approx(100 / a["predicted_rps"] * 1000)
    assert a["rps_vs_predicted"] == pytest.approx(900 / a["predicted_rps"])
    assert a["mean_vs_predicted"] == pytest.approx(110 / a["predicted_mean_ms"])
    assert 0 < a["predicted_cpu_utilisation"] <= 1 + 1e-9
    assert math.isnan(ui["predicted_rps"]) and math.isnan(ui["mean_vs_predicted"])
    assert "predicted_latency_ms" not in out and "p50_vs_predicted" not in out


def test_add_predictions_models_the_users_spread_and_an_even_one() -> None:
    """Plain `def` at 100 users on two workers of 40 tokens: the users' connections landed 67 and 33,
    so the first worker serves 40 at a time and the second all its 33 (800 + 660 req/s at 50 ms);
    at an even spread each serves 40 (1,600). Without a measured spread the two are one prediction."""
    base = dict(style="sleep/sync-def", style_users=100, model="closed", arrival_rate=math.nan,
                rps=1400.0, mean_ms=70.0, p50_ms=60.0, together=False)  # fmt: skip
    table = pd.DataFrame([dict(base, cell="a", users_per_worker=[67.0, 33.0]), dict(base, cell="b")])
    out = theory.add_predictions(table, {"a": cell(), "b": cell()}, None, machine_cores=2)
    placed, even = out.to_dict("records")
    assert placed["predicted_rps"] == pytest.approx(40 / 0.05 + 33 / 0.05)
    assert placed["predicted_even_rps"] == pytest.approx(2 * 40 / 0.05)
    assert even["predicted_rps"] == even["predicted_even_rps"] == pytest.approx(2 * 40 / 0.05)


def test_an_even_spread_measured_is_its_own_even_prediction() -> None:
    """CPU work at 10 and 10 users: the worker-by-worker model at the measured spread and at an even
    one are the same model at the same spread, so they agree exactly (a shared CPU network would
    give N/(N+1) of the cores and mark an even spread as uneven)."""
    base = dict(style="cpu/async", style_users=20, model="closed", arrival_rate=math.nan,
                rps=200.0, mean_ms=100.0, p50_ms=90.0, together=False)  # fmt: skip
    table = pd.DataFrame([dict(base, cell="a", users_per_worker=[10.0, 10.0])])
    out = theory.add_predictions(table, {"a": cell()}, PROBES, machine_cores=2)
    row = out.iloc[0]
    assert row["predicted_rps"] > 0 and row["predicted_even_rps"] == row["predicted_rps"]


def test_add_predictions_floors_the_cores_and_takes_an_open_rate() -> None:
    table = pd.DataFrame(
        [
            dict(cell="open", style="cpu/async", style_users=10, model="open", arrival_rate=500.0,
                 rps=90.0, mean_ms=900.0, p50_ms=800.0, together=False),
        ]
    )  # fmt: skip
    out = theory.add_predictions(table, {"open": cell(generator_cpu_cores=5.0)}, PROBES, machine_cores=2)
    row = out.iloc[0]
    assert row["predicted_rps"] == pytest.approx(theory.MIN_CORES / 0.008)
    assert math.isinf(row["predicted_mean_ms"]) and math.isnan(row["mean_vs_predicted"])


def test_add_predictions_on_a_real_old_run_without_means() -> None:
    """The fixture run predates the probes and the mean: the cpu family still gets c, the rest U/d."""
    run = load_run(FIXTURE)
    table = summarise(run).drop(columns=["mean_ms"], errors="ignore")
    cells = {c["id"]: c for c in run.cells}
    out = theory.add_predictions(table, cells, run.meta.get("calibration"), run.meta["machine"]["cpu_count"])
    assert out["mean_vs_predicted"].isna().all()
    solo = out[~out["together"]].set_index("style")
    cpu = solo.loc["cpu/async"]
    assert cpu["predicted_bottleneck"] == "CPU" and cpu["predicted_rps"] > 0
    blocking = out[(out["style"] == "sleep/blocking-in-async") & ~out["together"]]
    assert (blocking["predicted_rps"] <= 40 + 1e-9).all()
    assert (blocking["rps_vs_predicted"].between(0.6, 1.2)).all()


def test_verdict_speaks_of_means_and_the_bottleneck() -> None:
    rows = pd.DataFrame(
        [
            dict(style_users=10, rps=39.0, predicted_rps=40.0, predicted_bottleneck="event loop", mean_ms=255.0,
                 predicted_mean_ms=250.0, p50_ms=200.0, p99_ms=450.0, p99_vs_baseline=8.0, model="closed"),
            dict(style_users=100, rps=39.5, predicted_rps=39.5, predicted_bottleneck="event loop", mean_ms=2600.0,
                 predicted_mean_ms=2530.0, p50_ms=800.0, p99_ms=6900.0, p99_vs_baseline=129.0, model="closed"),
        ]
    )  # fmt: skip
    text = theory.verdict(rows)
    assert "at U=100: 40 req/s against 40 predicted" in text
    assert "event loop" in text
    assert "mean 2,600.0 ms (predicted mean 2,530.0 ms)" in text
    assert "throughput capped" in text
    assert "129" not in text  # no baseline named: no p99 ratio
    assert "p99 129.0x the baseline's" in theory.verdict(rows, baseline="the baseline")
    old = rows.drop(columns=["mean_ms"])
    assert "mean not recorded" in theory.verdict(old)


def test_each_worker_is_a_cpu_of_its_own() -> None:
    # One worker on two free cores: its Python runs on one core at a time (the GIL), so 1 ms of
    # worker CPU per request caps it near 1,000 req/s, not 2,000.
    one = theory.predict("sleep/async-await", shape(users=400, workers=1, cores=2.0, cpu_s=0.001, workers_cpu_s=0.001))
    assert one.rps == pytest.approx(1000, rel=0.05) and one.bottleneck == "CPU"
    # Two workers on the same two cores: twice that.
    two = theory.predict("sleep/async-await", shape(users=400, workers=2, cores=2.0, cpu_s=0.001, workers_cpu_s=0.001))
    assert two.rps == pytest.approx(2000, rel=0.05)
    # CPU spent outside the workers (the upstream, PostgreSQL, a process pool) shares all the cores.
    pool = theory.predict("cpu/process-pool", shape(users=100, workers=1, cores=2.0, cpu_s=0.01, workers_cpu_s=0.0005))
    assert pool.rps == pytest.approx(2 / 0.0095, rel=0.08)
    # Fewer cores than workers: each worker gets its share of a core.
    shared = theory.predict(
        "sleep/async-await", shape(users=400, workers=4, cores=1.0, cpu_s=0.001, workers_cpu_s=0.001)
    )
    assert shared.rps == pytest.approx(1000, rel=0.05)


def _level(concurrency: int, requests: int, seconds: float, workers_cpu_s: float) -> dict:
    return {
        "concurrency": concurrency,
        "requests": requests,
        "seconds": seconds,
        "cpu_s_per_request": workers_cpu_s,
        "workers_cpu_s_per_request": workers_cpu_s,
    }


def test_threads_that_hand_the_gil_over_keep_the_share_of_a_core_the_calibration_measured() -> None:
    # At the busiest level the loop-run baseline kept 1.9 cores busy (200 x 7 ms over 0.737 s) and
    # the threadpool style 1.52 of them: its workers keep 0.8 of what the loop keeps.
    calibration = {
        "probes": [
            {"style": "cpu/async", "work": 200000,
             "levels": [_level(2, 200, 0.8, 0.007), _level(20, 200, 0.737, 0.007)]},
            {"style": "cpu/sync-def", "work": 200000,
             "levels": [_level(2, 200, 0.8, 0.007), _level(20, 200, 0.921, 0.007)]},
        ]
    }  # fmt: skip
    at = {"work": 200000, "wait_ms": 50}
    share = theory.core_share(calibration, "cpu/sync-def", at)
    assert share == pytest.approx(0.8, rel=0.01)
    assert theory.core_share(calibration, "cpu/async", at) == 1.0  # its work runs on the loop
    assert theory.core_share(calibration, "cpu/sync-def", {**at, "work": 5}) == 1.0  # no probe of that work
    assert theory.core_share(None, "cpu/sync-def", at) == 1.0
    # The share slows each worker's CPU station by that much: the cpu family's capacity is W*share/c.
    busy = dict(users=400, cpu_s=0.007, workers_cpu_s=0.007, cores=2.0)
    full = theory.predict("cpu/sync-def", shape(**busy))
    kept = theory.predict("cpu/sync-def", shape(**busy, core_share=share))
    assert full.rps == pytest.approx(2 / 0.007, rel=0.02)
    assert kept.rps == pytest.approx(0.8 * full.rps, rel=0.02)
    # add_predictions reads it from the run's calibration for that style only.
    table = pd.DataFrame(
        [
            dict(cell="c", style=s, style_users=20, model="closed", arrival_rate=math.nan, rps=200.0,
                 mean_ms=100.0, p50_ms=90.0, together=False)
            for s in ("cpu/async", "cpu/sync-def")
        ]
    )  # fmt: skip
    out = theory.add_predictions(table, {"c": cell(generator_cpu_cores=0.0)}, calibration, machine_cores=2)
    loop, threads = out["predicted_rps"]
    assert threads == pytest.approx(0.8 * loop, rel=0.02)


def test_the_calibrations_cpu_is_scaled_by_how_much_slower_the_machine_ran_in_the_cell() -> None:
    """The reference loop took 10% longer in the cell than during the calibration: the machine ran
    Python a tenth slower, so a request cost a tenth more CPU time than the calibration measured."""
    calibration = {**PROBES, "reference_ms": 0.60}
    slow = cell(reference_ms=0.66)
    assert theory.speed_ratio(slow, calibration) == pytest.approx(1.10)
    assert theory.speed_ratio(cell(), calibration) == 1.0  # not measured in the cell: as calibrated
    assert theory.speed_ratio(slow, PROBES) == 1.0  # nor in the calibration
    assert theory.speed_ratio(cell(reference_ms=6.0), calibration) == 1.0  # 10x: a broken reading
    table = pd.DataFrame(
        [
            dict(cell=c, style="cpu/async", style_users=20, model="closed", arrival_rate=math.nan, rps=200.0,
                 mean_ms=100.0, p50_ms=90.0, together=False)
            for c in ("same", "slow")
        ]
    )  # fmt: skip
    cells = {"same": cell(reference_ms=0.60, generator_cpu_cores=0.0), "slow": cell(**slow, generator_cpu_cores=0.0)}
    same, slower = theory.add_predictions(table, cells, calibration, machine_cores=2).to_dict("records")
    assert slower["predicted_rps"] == pytest.approx(same["predicted_rps"] / 1.10, rel=0.01)
    assert (same["machine_slowdown"], slower["machine_slowdown"]) == (1.0, pytest.approx(1.10))
