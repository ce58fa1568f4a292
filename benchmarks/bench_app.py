"""What a user waits for in the dashboard: settled times in real headless Chromium (issue 12).

Starts ``streamlit run app.py`` on a free port, drives it with Playwright's Chromium
(/usr/bin/chromium, headless, no GPU, no background networking) and prints the time
from the user's action until the page has *settled*: the expected content is on the
page and Streamlit's "running" status widget is gone.

Timed interactions (each the median of ``--repeat`` tries, except the first report):

- first report on a fresh server: open the app on a freshly started server process
  until the default sample's verdict and every chart are shown (the kernel cache on
  disk is used as a user's second session would; ``--cold-cache`` points the server
  at an empty cache directory to include kernel compilation);
- slice change: pick "median" / "worst" in the slice selector;
- seed change: type another seed in the sidebar (recomputes the statistic);
- sample change: pick another shipped sample set;
- upload to verdict: upload a 65536 x 512 float32 ``.npy`` (128 MiB) and wait for its verdict.

Not a test: nothing is asserted.  Numbers depend on the machine's load; run it on a
quiet machine for numbers to quote.

Usage:  python benchmarks/bench_app.py [--repeat 3] [--rows 65536] [--dim 512] [--cold-cache]
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CHART = '[data-testid="stPlotlyChart"] .js-plotly-plot'

# Settled = no status widget ("Running...") and the condition holds, twice 150 ms apart.
SETTLED_JS = """([cond]) => {
    const idle = !document.querySelector('[data-testid="stStatusWidget"]');
    const ok = idle && (new Function('return (' + cond + ')'))();
    const now = performance.now();
    if (!ok) { window.__lh_since = null; return false; }
    if (window.__lh_since == null) { window.__lh_since = now; return false; }
    return now - window.__lh_since >= 150;
}"""

SLICE_JS = """(() => { const m = document.body.innerText.match(/Slice (\\d+): statistic/); return m ? m[1] : null; })()"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``streamlit run app.py`` on a free port, stopped (its process group) on exit."""

    def __init__(self, cache_dir: str | None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
        if cache_dir:
            env["LATENT_HEALTH_CACHE"] = cache_dir
        self.log = tempfile.NamedTemporaryFile(prefix="bench_app_", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(self.port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"streamlit exited: {Path(self.log.name).read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("streamlit did not answer")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def settle(page, cond: str = "true", timeout: float = 300_000) -> None:
    page.evaluate("() => { window.__lh_since = null; }")
    page.wait_for_function(SETTLED_JS, arg=[cond], timeout=timeout, polling=50)


def timed(page, action, cond: str) -> float:
    t0 = time.perf_counter()
    action()
    page.wait_for_timeout(60)  # let the click reach the server before polling for "idle"
    settle(page, cond)
    return time.perf_counter() - t0 - 0.15  # minus the stability window


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rows", type=int, default=65536)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--cold-cache", action="store_true", help="start the server with an empty kernel cache")
    args = ap.parse_args(argv)

    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="bench_app_"))
    uploads = []  # a different file per try: the report cache must not answer the second one
    for k in range(max(1, args.repeat - 1)):
        uploads.append(tmp / f"upload{k}_{args.rows}x{args.dim}.npy")
        np.save(uploads[-1], np.random.default_rng(k).standard_normal((args.rows, args.dim), dtype=np.float32))
    cache = str(tmp / "cache") if args.cold_cache else None
    rows: list[tuple[str, list[float]]] = []
    server = Server(cache)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
            ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
            page = ctx.new_page()
            page.set_default_timeout(300_000)
            t0 = time.perf_counter()
            server.wait_healthy()
            page.goto(server.url)
            page.wait_for_selector(CHART)
            settle(page, "document.body.innerText.includes('Verdict') && "
                         "document.querySelectorAll('[data-testid=\"stPlotlyChart\"]').length >= 6")
            rows.append(("first report, fresh server (from process start)", [time.perf_counter() - t0 - 0.15]))

            # slice change: alternate median / worst
            times = []
            for k in range(args.repeat):
                for how in ("median", "worst"):
                    before = page.evaluate(SLICE_JS)
                    times.append(timed(
                        page, lambda: page.get_by_text(how, exact=True).first.click(),
                        f"({SLICE_JS}) !== null && ({SLICE_JS}) !== {before!r}"))
            rows.append(("slice change (median <-> worst)", times))

            times = []
            seed_box = page.get_by_role("spinbutton", name="Seed")
            for k in range(args.repeat):
                seed = 100 + k
                def act(seed=seed):
                    seed_box.fill(str(seed))
                    seed_box.press("Enter")
                times.append(timed(page, act, f"document.body.innerText.includes('seed {seed} ')"))
            rows.append(("seed change (recomputes the statistic)", times))

            times = []
            for k in range(args.repeat):
                for name in ("shifted", "healthy"):
                    def act(name=name):
                        page.locator('[data-testid="stSelectbox"]').filter(has_text="Sample set").click()
                        page.get_by_role("option", name=name, exact=True).click()
                    times.append(timed(page, act, f"document.body.innerText.includes('Verdict')"
                                                  f" && document.body.innerText.includes('from {name}.safetensors')"))
            rows.append(("sample change (shifted <-> healthy)", times))

            times = []
            for k in range(max(1, args.repeat - 1)):
                page.get_by_text("Sample", exact=True).first.click()
                settle(page, "document.body.innerText.includes('Verdict')")
                page.get_by_text("Upload", exact=True).first.click()
                settle(page, "!!document.querySelector('input[type=\"file\"]')")
                shape = f"{args.rows:,} x {args.dim}"
                times.append(timed(
                    page, lambda: page.locator('input[type="file"]').set_input_files(str(uploads[k])),
                    f"document.body.innerText.includes({shape!r}) && document.body.innerText.includes('Verdict')"))
                page.evaluate("() => document.querySelectorAll('[data-testid=\"stFileUploaderDeleteBtn\"] button')"
                              ".forEach(b => b.click())")
                page.wait_for_timeout(500)
            rows.append((f"upload {args.rows} x {args.dim} float32 .npy to verdict", times))
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    load = os.getloadavg()
    print(f"\nbench_app: settled times in headless Chromium, {os.cpu_count()} CPUs, "
          f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"
          + (", cold kernel cache" if args.cold_cache else ""))
    print(f"{'interaction':<52} {'median s':>9} {'min s':>7} {'max s':>7}  n")
    for name, ts in rows:
        print(f"{name:<52} {statistics.median(ts):9.2f} {min(ts):7.2f} {max(ts):7.2f}  {len(ts)}")


if __name__ == "__main__":
    main()
