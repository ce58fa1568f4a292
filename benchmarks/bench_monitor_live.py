"""Live lag of the Monitor page, in Chromium, with a writer running (issue 21).

A RunWriter logs one step every ``--period`` seconds into a fresh run below a temporary allowed
root; the Monitor page (``streamlit run app.py`` of ``--repo``, default this checkout) is opened
in headless Chromium, live refresh switched on at 2 s; a timer inside the page reads the SIGReg
chart's data (the largest step drawn for the run) every 50 ms and keeps the first time each step
was drawn (the browser's clock, the same machine's as the writer's), so the script's own waits
(a download) never delay a reading.  Lag of a step = the time it is first drawn minus the time
``RunWriter.log`` returned for it.  Meanwhile it clicks "Steps CSV" every few seconds and counts
the downloads that a refresh cancelled.

Target: every lag <= refresh interval + 1 s.  Prints median / max lag and the download count.
Compare with the previous page:  git archive <commit> | tar -x -C /tmp/before  and  --repo /tmp/before.

    python benchmarks/bench_monitor_live.py [--repo DIR] [--steps 20] [--period 1.0]
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

SHOWN_JS = """() => {
    let best = null;
    for (const gd of document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')) {
        const t = gd.layout && gd.layout.title && gd.layout.title.text;
        if (!t || !t.replace(/<[^>]*>/g, '').startsWith('SIGReg per step')) continue;
        for (const tr of gd._fullData || []) {
            if (tr.name !== 'live' || !tr.x) continue;
            for (const v of tr.x) { const n = Number(v); if (best === null || n > best) best = n; }
        }
    }
    return best;
}"""

WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from sigreg_core.runs import RunWriter
    run, steps, period = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    rng = np.random.default_rng(0)
    w = RunWriter(run, num_slices=64, max_rows=256)
    w.log(0, rng.standard_normal((256, 8)).astype(np.float32))
    print("ready", flush=True)
    sys.stdin.readline()  # go
    for s in range(1, steps + 1):
        t0 = time.time()
        w.log(s, rng.standard_normal((256, 8)).astype(np.float32))
        print(f"wrote {s} {time.time():.3f}", flush=True)
        time.sleep(max(0.0, period - (time.time() - t0)))
    w.close()
""")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", default=str(HERE), help="checkout whose app.py is served (default: this one)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--period", type=float, default=1.0, help="seconds between two logged steps")
    ap.add_argument("--refresh", type=int, default=2)
    args = ap.parse_args()
    repo = Path(args.repo).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="bench_monitor_live_"))
    root = tmp / "runs"
    root.mkdir()
    env = {**os.environ, "PYTHONPATH": str(repo), "LATENT_HEALTH_ALLOWED_ROOTS": str(root),
           "LATENT_HEALTH_CACHE": str(tmp / "cache"), "PYTHONUNBUFFERED": "1"}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(root / "live"), str(args.steps), str(args.period)],
                              cwd=repo, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    port = _port()
    log = open(tmp / "server.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                               "--server.port", str(port), "--server.address", "127.0.0.1",
                               "--browser.gatherUsageStats", "false"], cwd=repo, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
            page = b.new_context(viewport={"width": 1440, "height": 1800}, accept_downloads=True).new_page()
            page.goto(f"{url}/monitor")
            page.get_by_role("heading", name="Monitor").first.wait_for(timeout=120_000)
            try:
                page.wait_for_function(f"() => ({SHOWN_JS})() !== null", timeout=120_000)
            except Exception:
                titles = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].slice(0, 1).map(
                    g => [g.layout && g.layout.title && g.layout.title.text, (g._fullData || []).map(
                        t => [t.name, typeof t.x, t.x && t.x.constructor && t.x.constructor.name,
                              JSON.stringify(t.x).slice(0, 80)])])""")
                print("no SIGReg chart with the run 'live':", titles, page.inner_text("body")[:1500])
                page.screenshot(path=str(tmp / "timeout.png"))
                raise
            page.get_by_text("Live refresh").first.click()
            slider = page.get_by_role("slider").filter(has=page.locator("xpath=..")).first
            thumbs = page.get_by_role("slider")
            for i in range(thumbs.count()):  # the refresh select-slider: its smallest value, 2 s
                t = thumbs.nth(i)
                if (t.get_attribute("aria-valuetext") or "") in ("5", "2", "10", "30", "60"):
                    t.focus()
                    t.press("Home")
                    slider = t
                    break
            time.sleep(1.0)
            print(f"refresh: {slider.get_attribute('aria-valuetext')} s", flush=True)
            writer.stdin.write("go\n")
            writer.stdin.flush()
            page.evaluate("""(shown) => { window.__seen = {}; const f = eval(shown);
                setInterval(() => { const b = f(); if (b === null) return;
                    for (let s = 0; s <= b; s++) if (!(s in window.__seen)) window.__seen[s] = Date.now() / 1000; },
                    50); }""", SHOWN_JS)
            written, seen = {}, {}
            downloads = {"ok": 0, "failed": 0}
            os.set_blocking(writer.stdout.fileno(), False)
            t_end = time.time() + args.steps * args.period + args.refresh + 15
            next_dl = time.time() + 3
            buf = ""
            while time.time() < t_end and (len(seen) < args.steps):
                try:
                    chunk = writer.stdout.read()
                except (BlockingIOError, TypeError):
                    chunk = None
                if chunk:
                    buf += chunk
                    *lines, buf = buf.split("\n")
                    for ln in lines:
                        if ln.startswith("wrote "):
                            _, s, t = ln.split()
                            written[int(s)] = float(t)
                drawn = page.evaluate("() => window.__seen")
                now = time.time()
                for s in written:
                    if str(s) in drawn and s not in seen:
                        seen[s] = float(drawn[str(s)])
                if now >= next_dl:
                    next_dl = now + 4
                    try:
                        with page.expect_download(timeout=15_000) as d:
                            page.get_by_role("button", name="Steps CSV").click(timeout=10_000)
                        downloads["failed" if d.value.failure() else "ok"] += 1
                    except Exception:
                        downloads["failed"] += 1
                time.sleep(0.05)
            b.close()
        lags = [seen[s] - written[s] for s in sorted(seen) if s in written]
        if os.environ.get("BENCH_VERBOSE"):
            for s_ in sorted(written):
                print(f"step {s_}: written {written[s_]:.2f}, drawn {seen.get(s_, float('nan')):.2f}")
        missing = sorted(set(written) - set(seen))
        load = os.getloadavg()
        print(f"repo {repo}: {len(lags)} steps seen, lag median {statistics.median(lags):.2f} s, "
              f"max {max(lags):.2f} s (target <= {args.refresh + 1} s); not seen: {missing or 'none'}")
        print(f"downloads during live refresh: {downloads['ok']} ok, {downloads['failed']} failed")
        print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")
    finally:
        writer.kill()
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
