"""Your own app, end to end: routebench serves the sample shop (tests/sample_app, written as services
are, not like the target app) through the same Gunicorn + UvicornWorker launcher, with its
telemetry and stall detector around it, loads each route alone and together, and names what each
route does. Then ``make ui APP=...``'s class picker, and the apps it cannot use: one line, exit 2."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from routebench.launcher import Stack
from routebench.serverside.harness import HEALTH_PATH
from tests.conftest import assert_one_line_error, needs_chromium, routebench_cli, stack_settings

pytestmark = pytest.mark.stack

SAMPLE = Path(__file__).resolve().parent / "sample_app"
# Short cells at 1 and 30 users; 8 threadpool tokens a worker, so 30 users of the plain def route
# need more tokens than the 2 workers have (16): its verdict is then threadpool-bound. The def route
# behind a lock takes every token too, but serves one request at a time a worker: unknown, and why.
EXPERIMENT = """
name = "your-app-test"
duration_s = 2
warmup_s = 1
server_workers = [2]
threadpool_tokens = 8
locust_workers = 0
[[groups]]
name = "alone"
styles = ["*"]
users = [1, 30]
[[groups]]
name = "together"
styles = ["*"]
together = true
users = [30]
"""


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def scoring_cpu_ms() -> float:
    """What /recommendations' own code costs on this machine at the least: the sample shop's
    scoring, timed here in CPU time (the fastest of ten: the same loop's CPU time moves by up to
    1.7x with what runs beside it on this machine kind)."""
    spec = importlib.util.spec_from_file_location("shop_scoring", SAMPLE / "shop" / "scoring.py")
    assert spec is not None and spec.loader is not None
    scoring = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scoring)
    times = []
    for _ in range(10):
        start = time.thread_time()
        scoring.score(list(range(20)))
        times.append((time.thread_time() - start) * 1000)
    return min(times)


def harness_processes() -> list[int]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        if any("routebench.serverside.harness" in part for part in p.info["cmdline"] or []):
            out.append(p.pid)
    return out


def run_shop(tmp: Path, experiment: str, *extra: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``routebench run`` on the sample shop from ``tmp``, with relative results and reports
    directories (as make loadtest's are: your app's server runs in its own directory)."""
    (tmp / "exp.toml").write_text(experiment)
    args = ["run", "exp.toml", "--app", "shop.main:app", "--app-dir", str(SAMPLE), *extra]
    done = routebench_cli(*args, "--results", "results", "--reports", "reports", timeout=600, cwd=tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp / "results").iterdir()
    return done, run_dir


@pytest.fixture(scope="module")
def shop_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.CompletedProcess[str], Path, Path]]:
    tmp = tmp_path_factory.mktemp("your-app")
    done, run_dir = run_shop(tmp, EXPERIMENT, "--routes", str(SAMPLE / "routes.toml"))
    yield done, run_dir, tmp / "reports" / run_dir.name / "index.html"


def test_each_route_gets_the_verdict_its_code_earns(shop_run: tuple[Any, Path, Path]) -> None:
    done, run_dir, _ = shop_run
    doc = json.loads((run_dir / "findings.json").read_text())
    assert doc["schema"] == "routebench.findings/1" and doc["complete"]
    found = {r["route"]: r for r in doc["routes"]}
    verdicts = {route: r["verdict"] for route, r in found.items()}
    assert verdicts == {
        "/products": "fine",
        "/products/{product_id}": "fine",
        "/search": "fine",
        "POST /cart": "fine",
        "/prices": "blocks-event-loop",
        "/recommendations": "cpu-bound",
        "/orders/summary": "threadpool-bound",
        "/ledger": "unknown",
        "/stock": "errors",
    }, {route: r["why"] for route, r in found.items()}
    # The innocent-looking helper's line, in the app's own code, named for the route that calls it.
    sleeps = line_of(SAMPLE / "shop" / "pricing.py", "time.sleep(")
    prices = found["/prices"]["evidence"]
    assert prices["blocking_sites"][0]["site"] == f"shop/pricing.py:{sleeps} _fetch_from_bank"
    assert prices["blocking_sites"][0]["stack"][-1].startswith("shop/main.py:")
    # 30 users on 2 loops, each request 30 ms of time.sleep on its loop: the loops are held most of
    # the time, whatever the CPU (the rest of a request is well under a millisecond of it).
    assert prices["blocked_share"] > 0.5 and prices["threads_busy_max"] == 0
    assert found["/recommendations"]["evidence"]["blocking_sites"][0]["site"].startswith("shop/scoring.py:")
    # Its server CPU per request is its scoring loop's, timed here: both CPU time on this machine,
    # so a faster CPU lowers both (0.92 of it in a run here: the server's is read in the kernel's
    # 10 ms ticks, and a core shared with another process runs either slower; half of it is still
    # 50 times any other route's).
    assert found["/recommendations"]["evidence"]["cpu_ms_per_request"] > 0.5 * scoring_cpu_ms()
    assert found["/orders/summary"]["evidence"]["threads_busy_max"] == 8
    # The lock's waiters hold every token, and requests queue for more: far short of the tokens' pace.
    assert found["/ledger"]["evidence"]["threads_busy_max"] == 8 and found["/ledger"]["rule"] == 8
    assert "something behind the tokens (a lock, a small pool) serialises the route" in found["/ledger"]["why"]
    # Its lifespan ran (every fourth call uses the state it set up fails on purpose: 25%, not 100%).
    assert 0.2 < found["/stock"]["evidence"]["error_share"] < 0.3
    assert all(found[r]["evidence"]["blocking_sites"] == [] for r in ("/products", "/search"))
    # Every route alone at both counts and beside the others, its request name the route.
    assert all(len(r["latency"]) == 2 and len(r["beside_others"]) == 1 for r in doc["routes"])
    assert found["/products/{product_id}"]["sent"] == "/products/3"
    assert doc["left_out"] == []
    assert "/prices" in done.stderr and "blocks-event-loop" in done.stdout + done.stderr
    assert harness_processes() == []
    assert not (SAMPLE / "results").exists()  # nothing of the run written where the app runs


def test_the_report_shows_the_findings(shop_run: tuple[Any, Path, Path]) -> None:
    _, run_dir, page = shop_run
    html = page.read_text()
    assert 'id="findings"' in html and 'data-verdict="blocks-event-loop"' in html
    sleeps = line_of(SAMPLE / "shop" / "pricing.py", "time.sleep(")
    assert f"shop/pricing.py:{sleeps} _fetch_from_bank" in html
    # The target app's sections that speak of its own styles are not shown for your app.
    assert 'id="answers"' not in html and 'id="decision"' not in html
    state = json.loads((run_dir / "run.json").read_text())
    assert "APP=shop.main:app" in state["reproduce"]["command"]


def test_your_app_is_served_with_its_environment_and_our_evidence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_REGION", "test-region")
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/theirs")
    settings = stack_settings(app="shop.main:app", app_dir=SAMPLE, workers=2)
    with Stack(settings, telemetry_dir=tmp_path / "telemetry") as stack:
        assert stack.database_url is None and stack.upstream_url is None  # theirs, not ours
        health = httpx.get(stack.target_url + HEALTH_PATH).json()
        assert health["app"] == "shop.main:app" and health["threadpool_tokens"] == settings.threadpool_tokens
        bodies = [httpx.get(stack.target_url + "/stock").json() for _ in range(3)]
        assert {"region": "test-region", "in_stock": 41} in bodies
        pids = stack.all_pids()
        blocking_site = f"shop/pricing.py:{line_of(SAMPLE / 'shop' / 'pricing.py', 'time.sleep(')} _fetch_from_bank"

        def samples() -> list[dict[str, Any]]:
            return [
                json.loads(line)
                for f in (tmp_path / "telemetry").glob("worker-*.jsonl")
                for line in f.read_text().splitlines()
                if line.strip()
            ]

        # A /prices request blocks its loop 30 ms, the detector's threshold is 20 ms: on a busy
        # machine one request may be caught by no poll, so send them until one is (10 s at most).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            httpx.get(stack.target_url + "/prices")
            time.sleep(0.25)  # a sample or two of the telemetry (it writes every 20 ms here)
            if any(blocking_site in (s.get("sites") or {}) for s in samples()):
                break
    seen = samples()
    assert {s["pid"] for s in seen} >= set(stack.worker_pids() or []) and seen
    assert any("/stock" in (s.get("served") or {}) for s in seen)
    assert blocking_site in {site for s in seen for site in (s.get("sites") or {})}
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize(
    "app, words",
    [
        ("broken:app", "your app's lifespan failed at startup: RuntimeError: cannot reach the inventory service"),
        ("shop.nope:app", "cannot import shop.nope:app from"),
        ("writeonly:app", "writeonly:app: no route to load"),
    ],
)
def test_an_app_it_cannot_use_is_one_line_and_exit_2(tmp_path: Path, app: str, words: str) -> None:
    done = routebench_cli(
        "run", "--app", app, "--app-dir", str(SAMPLE), "--results", str(tmp_path / "results"), timeout=120
    )
    assert_one_line_error(done, words)
    assert not (tmp_path / "results").exists()
    assert harness_processes() == []


def test_your_own_locustfile_instead_of_the_routes(tmp_path: Path) -> None:
    """Each user class of the team's own locustfile is one route of the probe: every request it sends
    is named by the class (in our histograms and in Locust's own counts alike)."""
    # Alone only: the together cell adds nothing this test reads.
    alone = EXPERIMENT.split('[[groups]]\nname = "together"')[0]
    experiment = alone.replace("threadpool_tokens = 8", "threadpool_tokens = 40").replace("30]", "20]")
    _, run_dir = run_shop(tmp_path, experiment, "--locustfile", str(SAMPLE / "locustfile.py"))
    doc = json.loads((run_dir / "findings.json").read_text())
    found = {r["route"]: r for r in doc["routes"]}
    assert {k: r["verdict"] for k, r in found.items()} == {"Shopper": "fine", "PriceCheck": "blocks-event-loop"}
    sleeps = line_of(SAMPLE / "shop" / "pricing.py", "time.sleep(")
    assert found["PriceCheck"]["evidence"]["blocking_sites"][0]["site"] == f"shop/pricing.py:{sleeps} _fetch_from_bank"
    state = json.loads((run_dir / "run.json").read_text())
    shopper = next(c for c in state["cells"] if c["styles"] == ["Shopper"])
    exact = json.loads((run_dir / shopper["dir"] / "exact.json").read_text())
    assert set(exact["requests"]) == {"Shopper"} and set(exact["locust_counts"]) == {"Shopper"}
    assert "counts" not in shopper["validity"]["failed"]
    # Its shoppers think 20 to 60 ms between clicks: Little's law closes with that time counted
    # (U = X (R + Z)), which users who never think would break by half or more.
    assert exact["requests"]["Shopper"]["think_us"] > 0
    assert all("littles_law" not in c["validity"]["failed"] for c in state["cells"] if c["styles"] == ["Shopper"])
    assert "LOCUSTFILE=" in state["reproduce"]["command"]


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--routes", str(SAMPLE / "routes.toml")], "--routes or --locustfile, not both"),
        (["--locustfile", str(SAMPLE / "nothere.py")], "no such file"),
        (["--locustfile", str(SAMPLE / "writeonly.py")], "no user class with tasks in it"),
    ],
)
def test_a_locustfile_that_cannot_be_used_is_one_line(tmp_path: Path, extra: list[str], words: str) -> None:
    args = ["run", "--app", "shop.main:app", "--app-dir", str(SAMPLE), "--results", str(tmp_path / "r")]
    if "--routes" in extra:
        args += ["--locustfile", str(SAMPLE / "locustfile.py")]
    assert_one_line_error(routebench_cli(*args, *extra, timeout=120), words)
    assert not (tmp_path / "r").exists()


def test_a_lifespan_that_fails_only_when_served_is_one_line_too(tmp_path: Path) -> None:
    """The harness's own record of a failed startup (a worker's, say, whose environment differs
    from the check's): the launcher says it in one line instead of "worker failed to boot"."""
    from routebench.launcher import AppError

    settings = stack_settings(app="broken:app", app_dir=SAMPLE, workers=1)
    with pytest.raises(AppError, match="lifespan failed at startup: RuntimeError: cannot reach"):
        with Stack(settings, telemetry_dir=tmp_path / "telemetry"):
            pass


@needs_chromium
def test_the_class_picker_lists_your_routes(browser: Any, tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "routebench.cli", "ui", "--app", "shop.main:app", "--app-dir", str(SAMPLE)]
    argv += ["--results", str(tmp_path / "results"), "--web-port", "0", "--workers", "1"]
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    ) as proc:
        try:
            url = proc.stdout.readline().strip() if proc.stdout else ""
            assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("input[name=userCount]")
            rows = page.evaluate("""[...document.querySelectorAll('tbody tr')].map(r =>
                [r.innerText.trim().split('\\n')[0], r.querySelector('input[type=checkbox]').checked])""")
            assert {name for name, ticked in rows if ticked} == {
                "Products",
                "ProductsProductId",
                "Prices",
                "OrdersSummary",
                "Ledger",
                "Recommendations",
                "Stock",
            }
            assert {name for name, _ in rows} == {name for name, ticked in rows if ticked}  # no route style
        finally:
            proc.send_signal(2)
            proc.wait(30)
