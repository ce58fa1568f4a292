"""What a user waits for in the dashboard: settled times in real headless Chromium (issue 12).

Starts ``streamlit run app.py`` on a free port, drives it with Playwright's Chromium
(/usr/bin/chromium, headless, no GPU, no background networking) and prints the time
from the user's action until the page has *settled*: the expected content is on the
page, Streamlit's "running" status widget is gone, no element of the previous run is
left stale, every chart is drawn — and that holds for 150 ms (subtracted).

Timed interactions (each the median of ``--repeat`` tries, except the first report):

- first report on a fresh server: open the app on a freshly started server process
  until the default sample's verdict and every chart are shown (the kernel cache on
  disk is used as a user's second session would; ``--cold-cache`` points the server
  at an empty cache directory to include kernel compilation);
- slice change: pick "median" / "worst" in the slice selector;
- seed change: type another seed in the sidebar (recomputes the statistic);
- sample change: pick another shipped sample set;
- upload to verdict: upload a 65536 x 512 float32 ``.npy`` (128 MiB) and wait for its verdict;
- first use of each preset (``--only presets``, issue 23): right after the first report, pick each
  other preset in the sidebar, once each (a first use happens once per server), until its verdict
  is shown; ``--think S`` waits S seconds before each pick (a user reading the page), untimed.
  Run it with ``--cold-cache`` for a fresh server with an empty cache; the server runs with the
  background prefetch on (``LATENT_HEALTH_PREFETCH=1``) unless ``--no-prefetch``;
- Monte Carlo 1000 draws (``--only mc``): pick 1000 null draws in the sidebar; timed to the first
  usable page (a verdict on the page, the draws running in the background or done) and to the
  full report (its caption says "Monte Carlo null: 1000 draws").

How the clock reads: a time runs from the action until the settled condition is first seen to
have held for 150 ms, minus those 150 ms.  The condition is polled every 50 ms (from 60 ms after the
action, so that the action has reached the server before the page is read), so a time overstates
the true settling by 0-50 ms, 25 ms on average: the numbers are upper bounds, never flattered.

Not a test: nothing is asserted.  Numbers depend on the machine's load; run it on a
quiet machine for numbers to quote.

Usage:  python benchmarks/bench_app.py [--repeat 3] [--rows 65536] [--dim 512] [--cold-cache]
                                       [--against OTHER_CHECKOUT] [--only slice,seed,sample,upload]

``--against`` drives a second checkout (say, main before a change) turn by turn with
this one, so both see the same machine load; the table then has one column per app.
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

# Settled = no script run in progress (status widget), no stale element left from the previous run,
# no placeholder, every chart drawn, and the condition holds, for 150 ms in a row.
SETTLED_JS = """([cond]) => {
    const idle = !document.querySelector('[data-testid="stStatusWidget"]')
        && !document.querySelector('[data-testid="stElementContainer"][data-stale="true"]')
        && !document.querySelector('[data-testid="stSkeleton"]')
        && [...document.querySelectorAll('[data-testid="stPlotlyChart"]')].every(c => c.querySelector('.main-svg'));
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

    def __init__(self, cache_dir: str | None, root: Path = ROOT, prefetch: bool = True):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(root),
               "LATENT_HEALTH_PREFETCH": "1" if prefetch else "0"}
        if cache_dir:
            env["LATENT_HEALTH_CACHE"] = cache_dir
        self.log = tempfile.NamedTemporaryFile(prefix="bench_app_", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(self.port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false"],
            cwd=root, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

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


def _first_report(page, server: "Server") -> float:
    t0 = time.perf_counter()
    server.wait_healthy()
    page.goto(server.url)
    page.wait_for_selector(CHART)
    settle(page, "document.body.innerText.includes('Verdict') && "
                 "document.querySelectorAll('[data-testid=\"stPlotlyChart\"]').length >= 6")
    return time.perf_counter() - t0 - 0.15


def _slice_change(page, how: str) -> float:
    before = page.evaluate(SLICE_JS)
    return timed(page, lambda: page.get_by_text(how, exact=True).first.click(),
                 f"({SLICE_JS}) !== null && ({SLICE_JS}) !== {before!r}")


def _seed_change(page, seed: int) -> float:
    box = page.get_by_role("spinbutton", name="Seed")

    def act():
        box.fill(str(seed))
        box.press("Enter")
    return timed(page, act, f"document.body.innerText.includes('seed {seed} ')")


def _scroll_into_view(page, locator) -> None:
    """Bring ``locator`` into view and wait until the page has stopped scrolling (not timed: a user
    scrolls to a control before using it).

    Why: Streamlit's select box closes its option list on any scroll.  After the slice clicks the
    main area is scrolled down to the slice section; a click on the "Sample set" box then scrolls it
    back into view, the list opens, the scroll closes it, and the option is never found."""
    locator.scroll_into_view_if_needed()
    page.evaluate("""() => new Promise(done => {
        const main = document.querySelector('[data-testid="stMain"]') || document.scrollingElement;
        let last = null, still = 0;
        const tick = () => {
            const now = main.scrollTop + ',' + window.scrollY;
            still = now === last ? still + 1 : 0;
            last = now;
            if (still >= 3) done(); else requestAnimationFrame(tick);
        };
        requestAnimationFrame(tick);
    })""")


def _sample_change(page, name: str) -> float:
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Sample set")
    _scroll_into_view(page, box)

    def act():
        box.click()
        page.get_by_role("option", name=name, exact=True).click()
    return timed(page, act, "document.body.innerText.includes('Verdict')"
                            f" && document.body.innerText.includes('from {name}.safetensors')")


def _pick_option(page, box, name: str) -> None:
    """Pick ``name`` in a select box: open it and click the option; when the list closed before the click
    (a scroll closes it), type the name into the box's search field and press Enter, as a keyboard user does.

    Why: ``--only mc`` timed out waiting for ``get_by_role('option', name='1000')`` (issue 23): the
    "Monte Carlo null draws" box is the last in the sidebar, and opening it scrolled the sidebar."""
    box.click()
    option = page.get_by_role("option", name=name, exact=True)
    try:
        option.click(timeout=3_000)
        return
    except Exception:  # playwright's TimeoutError: the list is not open
        pass
    field = box.locator("input").first
    field.click()
    field.fill(name)
    page.get_by_role("option", name=name, exact=True).click(timeout=10_000)


PRESET_ORDER = ("lejepa-paper", "lejepa-legacy", "gist", "modulus")


def _preset_change(page, name: str, think: float) -> float:
    if think > 0:
        page.wait_for_timeout(think * 1000)
    box = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').filter(has_text="Preset")

    def act():
        box.click()
        page.get_by_role("option", name=name, exact=True).click()
    return timed(page, act, "document.body.innerText.includes('Verdict')"
                            f" && document.body.innerText.includes('preset {name} ')")


def _mc_draws(page, draws: int = 1000) -> tuple[float, float]:
    box = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').filter(
        has_text="Monte Carlo null draws")
    full = f"document.body.innerText.includes('Monte Carlo null: {draws} draws')"
    _scroll_into_view(page, box)  # the box sits low in the sidebar: a scroll while the list is open closes it
    t0 = time.perf_counter()
    _pick_option(page, box, str(draws))
    page.wait_for_timeout(60)
    settle(page, f"document.body.innerText.includes('Verdict') && ({full} || "
                 "document.body.innerText.includes('in the background'))")
    usable = time.perf_counter() - t0 - 0.15
    page.wait_for_function(full, timeout=600_000, polling=200)
    return usable, time.perf_counter() - t0


def _upload(page, path: Path, rows: int, dim: int) -> float:
    page.get_by_text("Sample", exact=True).first.click()
    settle(page, "document.body.innerText.includes('Verdict')")
    page.get_by_text("Upload", exact=True).first.click()
    settle(page, "!!document.querySelector('input[type=\"file\"]')")
    shape = f"{rows:,} x {dim}"
    t = timed(page, lambda: page.locator('input[type="file"]').set_input_files(str(path)),
              f"document.body.innerText.includes({shape!r}) && document.body.innerText.includes('Verdict')")
    page.evaluate("() => document.querySelectorAll('[data-testid=\"stFileUploaderDeleteBtn\"] button')"
                  ".forEach(b => b.click())")
    page.wait_for_timeout(500)
    return t


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rows", type=int, default=65536)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--only", default="slice,seed,sample,upload",
                    help="comma-separated interactions to time after the first report "
                         "(slice, seed, sample, upload, presets; default all but presets)")
    ap.add_argument("--think", type=float, default=0.0,
                    help="seconds to wait (untimed) before each first use of a preset")
    ap.add_argument("--no-prefetch", action="store_true", help="serve with the background prefetch off")
    ap.add_argument("--cold-cache", action="store_true", help="start the server with an empty kernel cache")
    ap.add_argument("--against", metavar="CHECKOUT",
                    help="another checkout of this repository (e.g. a worktree of main): both apps are driven "
                         "turn by turn, so a busy machine slows both alike; prints one column each")
    args = ap.parse_args(argv)
    only = {w.strip() for w in args.only.split(",") if w.strip()}
    unknown = only - {"slice", "seed", "sample", "upload", "presets", "mc"}
    if unknown:
        ap.error(f"--only: unknown interaction(s) {', '.join(sorted(unknown))}")

    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="bench_app_"))
    tries = max(1, args.repeat - 1)
    roots = {"this": ROOT} if not args.against else {"this": ROOT, "against": Path(args.against).resolve()}
    uploads = {}  # a different file per try and app: the report cache must not answer a second time
    for label in roots if "upload" in only else ():
        for k in range(tries):
            f = tmp / f"{label}{k}_{args.rows}x{args.dim}.npy"
            seed = 1000 * len(uploads) + k
            np.save(f, np.random.default_rng(seed).standard_normal((args.rows, args.dim), dtype=np.float32))
            uploads[(label, k)] = f
    cache = str(tmp / "cache") if args.cold_cache else None
    results: dict[str, dict[str, list[float]]] = {label: {} for label in roots}
    servers = {}
    try:
        with sync_playwright() as p:
            pages, browsers = {}, []
            for label, root in roots.items():  # one server at a time, each with its own fresh browser
                browsers.append(p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True))
                servers[label] = Server(cache if label == "this" else (cache and cache + "_against"), root=root,
                                        prefetch=not args.no_prefetch)
                page = browsers[-1].new_context(viewport={"width": 1440, "height": 1000}).new_page()
                page.set_default_timeout(300_000)
                results[label]["first report, fresh server (from process start)"] = [
                    _first_report(page, servers[label])]
                pages[label] = page

            def each(name: str, fn) -> None:
                for label, page in pages.items():
                    results[label].setdefault(name, []).append(fn(label, page))

            for k in range(args.repeat if "slice" in only else 0):
                for how in ("median", "worst"):
                    each("slice change (median <-> worst)", lambda _, pg, how=how: _slice_change(pg, how))
            for k in range(args.repeat if "seed" in only else 0):
                each("seed change (recomputes the statistic)", lambda _, pg, k=k: _seed_change(pg, 100 + k))
            for k in range(args.repeat if "sample" in only else 0):
                for name in ("shifted", "healthy"):
                    each("sample change (shifted <-> healthy)", lambda _, pg, name=name: _sample_change(pg, name))
            for name in PRESET_ORDER if "presets" in only else ():
                each(f"first use of preset {name}", lambda _, pg, name=name: _preset_change(pg, name, args.think))
            if "mc" in only:
                for label, page in pages.items():
                    usable, full = _mc_draws(page)
                    results[label].setdefault("Monte Carlo 1000 draws: first usable page", []).append(usable)
                    results[label].setdefault("Monte Carlo 1000 draws: full report", []).append(full)
            for k in range(tries if "upload" in only else 0):
                each(f"upload {args.rows} x {args.dim} float32 .npy to verdict",
                     lambda label, pg, k=k: _upload(pg, uploads[(label, k)], args.rows, args.dim))
            for browser in browsers:
                browser.close()
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    load = os.getloadavg()
    print(f"\nbench_app: settled times in headless Chromium, {os.cpu_count()} CPUs, "
          f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"
          + (", cold cache (fresh server, empty cache)" if args.cold_cache else "")
          + (", background prefetch off" if args.no_prefetch else "")
          + (f", {args.think:g} s think time before each preset" if "presets" in only and args.think else ""))
    for label, root in roots.items():
        print(f"{label}: {root}")
    width = 26
    head = "".join(f" | {label + ' s: median (min-max)':<{width}}" for label in roots)
    print(f"{'interaction':<50}{head} | n")
    for name in results["this"]:
        cells = "".join(f" | {f'{statistics.median(ts):.2f} ({min(ts):.2f}-{max(ts):.2f})':<{width}}"
                        for ts in (results[label][name] for label in roots))
        print(f"{name:<50}{cells} | {len(results['this'][name])}")

if __name__ == "__main__":
    main()
