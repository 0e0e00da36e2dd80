"""``routebench run`` and ``routebench ui`` end to end: real stack, real Locust master and workers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import psutil
import pytest

from analysis.load import load_run
from analysis.rundir import CellDir
from analysis.summary import CANARY_SLACK, summarise
from analysis.validity import locusts_count_range
from locustfiles.capture import load_histogram
from target_app import catalogue
from tests.conftest import routebench_cli, still_running, ui_command

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.stack  # starts the real stack or Locust: left out by -m 'not stack'


def locust_bucket(ms: float) -> float:
    """The rounding Locust applies before its percentiles (locust/stats.py)."""
    return 1 if ms < 100 else 10 if ms < 1000 else 100


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    results = tmp_path_factory.mktemp("results")
    started = time.monotonic()
    done = routebench_cli("run", "smoke", "--results", str(results))
    assert done.returncode == 0, done.stderr[-2000:]
    # No wait on a timeout: the smoke run is 2 cells of 1 + 6 s and a few seconds of calibration
    # probes (fixed, whatever the CPU), plus starting its processes (about 10 s here, so a CPU six
    # times slower still passes); a server drain awaited in vain costs 30 s more per cell.
    assert time.monotonic() - started < 90
    (run_dir,) = results.iterdir()
    return run_dir


def test_every_cell_has_exact_histograms_and_locust_csvs(smoke_run: Path) -> None:
    run = load_run(smoke_run)
    assert run.meta["status"] == "complete"
    assert [c["status"] for c in run.cells] == ["ok", "ok"]
    for cell in run.cells:
        cell_dir = smoke_run / cell["dir"]
        exact = json.loads((cell_dir / "exact.json").read_text())
        # At least two Locust worker processes contributed samples.
        assert len([n for n in exact["samples_by_worker"].values() if n > 0]) >= 2
        stats = pd.read_csv(cell_dir / "locust_stats.csv").set_index("Name")
        for style in cell["styles"]:
            hist = load_histogram(cell_dir / "hdr" / catalogue.BY_ID[style].hdr_file)
            e = exact["requests"][style]
            assert hist.get_total_count() > 0
            # The exact count against Locust's own, taken once every final report was in (what
            # each counts: analysis.validity.locusts_count_range).
            theirs = exact["locust_counts"][style]["requests"]
            assert e.get("before_locust_reset", 0) <= 2 * cell["users"], e  # a moment's completions at most
            low, high = locusts_count_range(e)
            assert low <= theirs <= high + 2, (style, low, theirs, high, e)
            # The window's requests were let finish: none was left unfinished, and the test went on
            # after the window for them.
            assert e.get("censored", 0) == 0 and exact["test"]["finish"]["complete"], (e, exact["test"]["finish"])
            assert exact["measure_until"] < exact["stopped_at"]
            assert stats.loc[style, "Request Count"] > 0
        assert "counts" not in cell["validity"]["failed"] and exact["final_reports"]["missing"] == []
        for name in ("locust_stats_history.csv", "locust_failures.csv", "locust_exceptions.csv"):
            assert (cell_dir / name).is_file()
        assert list((cell_dir / "telemetry").glob("worker-*.jsonl"))
        generator = json.loads((cell_dir / "generator.json").read_text())
        assert not generator["saturated"]
        # The load side's cores are Locust's and routebench's own (it drives the test on this machine).
        assert {"routebench", "locust-master"} <= {p["name"] for p in generator["processes"]}
        # The lab's own services were read over the window (no cell of this run needs PostgreSQL, so
        # its stack has none): a sleep route does not call the upstream, which took next to nothing.
        assert set(cell["lab_cpu_cores"]) == {"upstream"}
        assert all(0 <= cores < 0.2 for cores in cell["lab_cpu_cores"].values()), cell["lab_cpu_cores"]
        # The machine's speed was read through the window, as during the calibration (routebench.speed).
        assert cell["reference_ms"] > 0


def test_run_metadata_is_complete(smoke_run: Path) -> None:
    meta = json.loads((smoke_run / "run.json").read_text())
    for pkg in ("python", "fastapi", "starlette", "uvicorn", "gunicorn", "locust", "postgresql"):
        assert meta["versions"][pkg] and "not installed" not in meta["versions"][pkg], pkg
    assert meta["versions"]["postgresql"].startswith("postgres")
    assert meta["machine"]["cpu_count"] >= 1 and meta["machine"]["cpu_model"]
    assert meta["calibration"]["reference_ms"] > 0  # the machine's speed while the probes ran
    assert "commit" in meta["git"]
    assert meta["experiment"]["name"] == "smoke" and meta["experiment"]["groups"]


def test_blocking_in_async_p99_is_far_above_async_await(smoke_run: Path) -> None:
    table = summarise(load_run(smoke_run)).set_index("style")
    good, bad = table.loc["sleep/async-await"], table.loc["sleep/blocking-in-async"]
    # U=10 users, W=2 loops, d=50 ms: theory says about U*d/W = 250 ms against about 50 ms. Each
    # loop serves its users' requests one at a time, so the fuller loop's (at least U/W = 5 users)
    # take 5 d each, whatever the CPU; async-await's take d plus overheads (2.5x fails only past 2 d).
    assert bad["p99_ms"] > 2.5 * good["p99_ms"]
    # Two loops each held d per request serve at most W/d = 40/s (10% for the requests begun before
    # the window and answered in it); async-await's 10 users near U/d = 200/s.
    assert bad["rps"] < 2 / 0.05 * 1.1 and bad["rps"] < good["rps"] / 2
    assert (smoke_run / "summary.md").is_file()


def test_the_stall_detector_names_the_blocking_line_and_clears_async_await(smoke_run: Path) -> None:
    table = summarise(load_run(smoke_run)).set_index("style")
    bad, good = table.loc["sleep/blocking-in-async"], table.loc["sleep/async-await"]
    # 10 users on 2 loops, each request a 50 ms time.sleep on the loop: the loops are stuck nearly
    # all the window. async-await's loops only await: no stall in the app's own code (one there
    # needs a line that holds the loop), and what the loops' own code shows (the OS keeping a loop
    # off a busy CPU past the 20 ms threshold) stays a small fraction of blocking-in-async's.
    assert bad["blocked_share"] > 0.5
    assert good["own_code_share"] < 0.02 and good["blocked_share"] < bad["blocked_share"] / 4, good
    line = next(
        n
        for n, text in enumerate((REPO / "target_app/routes/sleep.py").read_text().splitlines(), 1)
        if "time.sleep(wait)  # the mistake" in text
    )
    assert bad["top_site"] == f"target_app/routes/sleep.py:{line} blocking_in_async"
    assert bad["top_site_share"] > 0.9
    cell = next(c for c in load_run(smoke_run).cells if c["styles"] == ["sleep/blocking-in-async"])
    stalls = json.loads((smoke_run / cell["dir"] / "stalls.json").read_text())
    assert stalls["sites"][0]["route"] == "/sleep/blocking-in-async" and stalls["workers"] == 2


def test_the_canary_feels_the_blocked_loop_and_takes_no_users_from_the_style(smoke_run: Path) -> None:
    """The canary (catalogue.CANARY) beside each cell: its own user, its own fixed schedule, its
    latency from each intended start, kept apart from the styles' requests."""
    run = load_run(smoke_run)
    table = summarise(run).set_index("style")
    bad, good = table.loc["sleep/blocking-in-async"], table.loc["sleep/async-await"]
    for cell in run.cells:
        exact = run.data[cell["id"]].exact
        canary = exact["canary"]
        assert catalogue.CANARY not in exact["requests"] and catalogue.CANARY not in exact["timeline"]
        assert cell["users_by_style"] == {cell["styles"][0]: cell["users"]}  # the canary's user is one more
        # Its schedule: CANARY_RATE starts a second over the window, every one sent or censored.
        window = exact["measure_until"] - exact["measure_from"]
        assert abs(canary["offered"] - catalogue.CANARY_RATE * window) <= 1, canary
        # (The master's "window ends" reaches the canary's worker a moment after the end: a start
        # or two of that moment may be counted in the window.)
        accounted = canary["count"] + canary["failures"] + canary["censored"]
        assert 0 <= accounted - canary["offered"] <= CANARY_SLACK, canary
    # Beside blocking-in-async every loop is held 50 ms at a time by a request queued before the
    # canary's: its slowest requests wait out at least one whole hold (d). Beside async-await the
    # loops only await: the canary's request finds its loop free.
    assert bad["canary_p99_ms"] >= 50 and bad["canary_p99_ms"] > 2 * good["canary_p99_ms"], (bad, good)


def test_exact_percentiles_agree_with_locusts_within_its_rounding(smoke_run: Path) -> None:
    run = load_run(smoke_run)
    table = summarise(run).set_index("style")
    for cell in run.cells:
        exact = json.loads((smoke_run / cell["dir"] / "exact.json").read_text())
        for style in cell["styles"]:
            row = table.loc[style]
            hist = load_histogram(smoke_run / cell["dir"] / "hdr" / catalogue.BY_ID[style].hdr_file)
            # Locust's set also holds the requests sent in the warm-up or after the window that
            # completed while its stats counted, so its quantile is the exact one at a rank that
            # many requests away. That matters: with users split unevenly over the server's
            # workers, blocking-in-async's latencies form two modes of equal mass (each worker
            # serves one request per wait), and p50 sits on the gap between them.
            e = exact["requests"][style]
            _, high = locusts_count_range(e)  # Locust's set: the exact one, and these more at most
            shift = 100 * (high - e["count"] - e["failures"] + 2) / hist.get_total_count()
            for q, rounded, slack in (
                (50, row.locust_p50_ms, 0.05),
                (95, row.locust_p95_ms, 0.05),
                (99, row.locust_p99_ms, 0.10),
            ):
                low = hist.get_value_at_percentile(max(0.0, q - shift)) / 1000
                high = hist.get_value_at_percentile(min(100.0, q + shift)) / 1000
                margin = max(locust_bucket(rounded), slack * rounded)
                assert low - margin <= rounded <= high + margin, (style, q, low, rounded, high)
            # Exact values resolve below a millisecond; Locust's never do.
            assert any(abs(v - round(v)) > 1e-6 for v in (row.p50_ms, row.p95_ms, row.p99_ms, row.p999_ms))


def test_ctrl_c_keeps_finished_cells_and_leaves_no_process(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "routebench.cli", "run", "smoke", "--results", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            state: dict[str, object] = {}
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                runs = list(tmp_path.glob("*/run.json"))
                if runs:
                    try:
                        state = json.loads(runs[0].read_text())
                    except json.JSONDecodeError:
                        state = {}
                    cells = state.get("cells", [])
                    if cells and cells[0]["status"] == "ok" and cells[1]["status"] == "running":  # type: ignore[index]
                        break
                time.sleep(0.2)
            # Well inside the second cell: its test started (the master wrote its window), so its
            # stack and Locust are up, with seconds of the cell to go.
            cells = state.get("cells") or []
            second = CellDir(runs[0].parent / cells[1]["dir"]) if len(cells) > 1 else None  # type: ignore[arg-type, index]
            while second is not None and not second.window.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            family = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
            now = json.loads(runs[0].read_text()) if runs else {}
            assert len(family) >= 6, (
                f"routebench exit code {proc.poll()}; cells: "
                f"{[(c['status'], c.get('reason')) for c in now.get('cells', [])]}"
            )
            proc.send_signal(signal.SIGINT)
            assert proc.wait(60) == 130
            err = proc.stderr.read() if proc.stderr else ""
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "interrupted" in err and "Traceback" not in err
    meta = json.loads(runs[0].read_text())
    assert meta["status"] == "incomplete"
    assert [c["status"] for c in meta["cells"]] == ["ok", "interrupted"]
    assert (runs[0].parent / meta["cells"][0]["dir"] / "exact.json").is_file()
    assert still_running(family) == []


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    with subprocess.Popen(
        ui_command(tmp_path, "--workers", "2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            yield proc, tmp_path
        finally:
            if proc.poll() is None:
                proc.kill()


def test_web_ui_lists_every_style_records_and_stops_cleanly(ui: tuple[subprocess.Popen[str], Path]) -> None:
    proc, results = ui
    url = proc.stdout.readline().strip() if proc.stdout else ""
    assert url == "http://127.0.0.1:8089"
    page = httpx.get(url).text
    from target_app import catalogue

    for style in catalogue.STYLES:
        assert style.class_name in page
    listening = [c for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port == 8089]
    assert listening and all(c.laddr.ip == "127.0.0.1" for c in listening)
    r = httpx.post(url + "/swarm", data={"user_count": 4, "spawn_rate": 4, "user_classes": ["SleepAsyncAwait"]})
    assert r.status_code == 200 and r.json()["success"], r.text
    time.sleep(5)
    stats = httpx.get(url + "/stats/requests").json()
    assert stats["stats"][-1]["num_requests"] > 10 and stats["stats"][-1]["num_failures"] == 0, stats["errors"]
    family = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0
    (run_dir,) = results.iterdir()
    # Stopped by Ctrl-C mid-test: the test is still saved, as the session's one cell.
    exact = json.loads((run_dir / "ui-001" / "exact.json").read_text())
    assert exact["requests"]["sleep/async-await"]["count"] > 10
    assert exact["test"]["users_by_style"] == {"sleep/async-await": 4}
    report = routebench_cli("report", str(run_dir), "--reports", str(results / "reports"))
    assert report.returncode == 0 and "sleep/async-await" in report.stdout
    assert (results / "reports" / run_dir.name / "index.html").is_file()
    assert still_running(family) == []


OPEN_MODEL = """
name = "open"
calibrate = false
duration_s = 5
warmup_s = 1
model = "open"
arrival_rate = 60
users = [40]
wait_ms = 50
locust_workers = 2
[[groups]]
styles = ["sleep/async-await", "sleep/blocking-in-async"]
"""


def test_open_model_counts_latency_from_the_intended_start(tmp_path: Path) -> None:
    """60 requests/s offered on a fixed schedule. async-await keeps up (latency about d, starts on
    time); blocking-in-async can serve only W/d = 40/s, so its queue grows: latency counted from the
    intended start climbs far past what the server reports per request, and starts fall behind."""
    exp = tmp_path / "open.toml"
    exp.write_text(OPEN_MODEL)
    done = routebench_cli("run", str(exp), "--results", str(tmp_path / "results"), "--reports", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = (tmp_path / "results").iterdir()
    table = summarise(load_run(run_dir)).set_index("style")
    good, bad = table.loc["sleep/async-await"], table.loc["sleep/blocking-in-async"]
    # async-await keeps up: its latency is d plus the overheads (3 d leaves 100 ms of them at the
    # median), and its starts are late only when the generator's own loop falls 10 ms behind (its
    # 40 users are free: about rate x d = 3 requests are in flight).
    assert good["p50_ms"] < 3 * 50 and good["late_starts"] < 0.1 * good["requests"]
    # The offered load outruns W/d: starts fall behind the schedule, and since latency counts from
    # the intended start, the growing backlog shows in full. Sending 40 of the 60 starts due each
    # second, the start being sent at t s into the schedule was due at 2t/3: after the warm-up's
    # 1 s and the window's 5 s, the latest is 2 s behind, against about d for async-await.
    assert bad["late_starts"] > 0.3 * bad["requests"]
    assert bad["p99_ms"] > 1000 and bad["p99_ms"] > 10 * good["p99_ms"]
    # What the schedule offered is counted whether or not it was sent or finished: 60/s over the
    # window (the two workers' schedules interleave, each at 30/s), offered = sent + unsent. Each
    # worker counts its own window, from when it heard of the test to when it heard of the stop;
    # the master's differs by those messages' delivery: 2% of the window is 100 ms of it, plus one
    # start per worker at either end.
    run = load_run(run_dir)
    exact = {c["styles"][0]: run.data[c["id"]].exact for c in run.cells}
    for style, body in exact.items():
        e, window = body["requests"][style], body["stopped_at"] - body["measure_from"]
        assert abs(e["offered"] - 60 * window) <= 2 + 0.02 * 60 * window, (style, e["offered"], window)
        assert e["offered"] == e["sent"] + e["unsent_at_stop"]
        # Every offered start is in the distribution once: completed, or censored at the close.
        assert e["count"] + e["failures"] + e["censored"] == e["offered"], (style, e)
    g, b = (
        exact["sleep/async-await"]["requests"]["sleep/async-await"],
        exact["sleep/blocking-in-async"]["requests"]["sleep/blocking-in-async"],
    )
    # async-await's unsent starts are only the moment's backlog at the stop: those due while the
    # generator's loop was busy stopping (Locust's stop does work, such as inspecting its caller's
    # stack, before our close runs), so a busy CPU leaves more (1 to 4 here, 8 on another machine).
    # A backlog that grew through the window, as blocking-in-async's does below, leaves a third of
    # the schedule; 5% of it is 250 ms of a stopping loop, far beyond a moment. Censored adds what
    # was in flight, about rate x d = 3 (Little's law): 10% stays far from blocking-in-async's 40%,
    # and the median exact.
    assert g["unsent_at_stop"] <= 0.05 * g["offered"], g
    assert g["censored"] <= 0.1 * g["offered"] and "50" not in g["at_least"], g
    # 60/s offered to a 40/s route: a third of the schedule never finished in the window. Those
    # requests stay in the distribution, censored at their elapsed time, so p99 is a lower bound.
    assert b["censored"] == b["unsent_at_stop"] + b["inflight_at_stop"] > 0.15 * b["offered"]
    assert b["count"] < 0.8 * b["offered"]
    assert "99" in b["at_least"] and b["percentiles_us"]["99"] > 1_000_000


def test_web_ui_requires_a_login_when_a_password_is_set(tmp_path: Path) -> None:
    import os
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "ROUTEBENCH_UI_PASSWORD": "s3cret-pass"}
    with subprocess.Popen(
        ui_command(tmp_path, "--workers", "1", "--web-port", str(port)),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            url = proc.stdout.readline().strip() if proc.stdout else ""
            assert url == f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=url) as client:
                first = client.get("/")
                assert first.status_code == 302 and "/login" in first.headers["location"]
                assert "s3cret-pass" not in " ".join(psutil.Process(proc.pid).children(recursive=True)[0].cmdline())
                wrong = client.post("/rb_login", data={"username": "me", "password": "nope"})
                assert wrong.status_code == 302 and "/login" in wrong.headers["location"]
                assert client.get("/").status_code == 302
                right = client.post("/rb_login", data={"username": "me", "password": "s3cret-pass"})
                assert right.status_code == 302
                page = client.get("/")
                assert page.status_code == 200 and "SleepAsyncAwait" in page.text
            proc.send_signal(signal.SIGINT)
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
