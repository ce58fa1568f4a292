"""Multi-session load test: 8 browser sessions at once, each uploading and scoring its own file.

    python benchmarks/bench_sessions.py [--sessions 8] [--timeout 600] [--json out.json]

Starts ``streamlit run app.py`` on a free port, opens N isolated browser contexts in one
headless Chromium (``/usr/bin/chromium``), and in every session at the same moment uploads a
different file on the Inspect page:

* session 0 gets a hostile file (a 1.5 KB ``.pt`` whose object graph has 10^12 paths);
* session 1 gets a long job (40 000 x 64 rows: a few seconds of scoring);
* the others get small sets of distinct shapes (``(400 + 50 i) x (6 + 2 i)``).

It checks that every session shows *its own* answer (its own shape and a verdict, or for the
hostile file its own one-line error and no exception box), that no session shows another's
shape (nothing leaks between sessions), that the server's resident memory stays bounded, and
how long each session waited; the small sessions' answers while the long job is running show
whether long work in one session freezes the others.  Prints a table and exits 1 if a check
failed.  Timings depend on the machine's load: re-run on a quiet machine for the README.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its descendants (from /proc)."""
    total = 0
    todo = [pid]
    seen = set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return total


def make_files(folder: Path, sessions: int) -> list[dict]:
    """One file per session: [hostile, long, small...], each with the text its answer must show."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    c = [0]
    for _ in range(12):
        c = [c] * 10
    hostile = folder / "s0_shared_refs.pt"
    torch.save(c, hostile)
    files.append({"path": hostile, "expect": "object graph has more than", "kind": "hostile"})
    rng = np.random.default_rng(1)
    big = folder / "s1_long.npy"
    np.save(big, rng.standard_normal((40_000, 64)).astype(np.float32))
    files.append({"path": big, "expect": "40,000 x 64", "kind": "long"})
    for i in range(2, sessions):
        n, d = 400 + 50 * i, 6 + 2 * i
        p = folder / f"s{i}_small_{n}x{d}.npy"
        np.save(p, rng.standard_normal((n, d)).astype(np.float32))
        files.append({"path": p, "expect": f"{n:,} x {d}", "kind": "small"})
    return files


def start_server(port: int, log: Path, env_extra: dict) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), **env_extra}
    out = open(log, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("streamlit did not answer within 120 s")
        time.sleep(0.3)


def stop_server(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=15)


async def _session(browser, url: str, spec: dict, start: asyncio.Event, ready: list, timeout_ms: int) -> dict:
    ctx = await browser.new_context(viewport={"width": 1400, "height": 1200})
    page = await ctx.new_page()
    page.set_default_timeout(timeout_ms)
    res = {"file": spec["path"].name, "kind": spec["kind"]}
    try:
        t0 = time.monotonic()
        await page.goto(url)
        await page.get_by_text("Upload", exact=True).first.wait_for()
        res["page_s"] = time.monotonic() - t0
        ready.append(spec["path"].name)
        await start.wait()  # every session uploads at the same moment
        t1 = time.monotonic()
        await page.get_by_text("Upload", exact=True).first.click()
        await page.locator('input[type="file"]').set_input_files(str(spec["path"]))
        if spec["kind"] == "hostile":
            await page.locator('[data-testid="stAlertContentError"]').filter(has_text=spec["expect"]).first.wait_for()
        else:
            await page.get_by_text(spec["expect"], exact=False).first.wait_for()
            await page.get_by_text("Verdict:", exact=False).first.wait_for()
            await page.wait_for_function(
                f"() => document.body.innerText.includes({json.dumps(spec['expect'])}) && "
                "!document.querySelector('[data-testid=\"stStatusWidget\"]')")
        res["answer_s"] = time.monotonic() - t1
        res["t_done"] = time.monotonic()
        text = await page.evaluate("() => document.body.innerText")
        res["exception_box"] = await page.locator('[data-testid="stException"]').count()
        res["text"] = text
        res["ok"] = True
    except Exception as exc:  # noqa: BLE001 - reported in the table
        res["ok"] = False
        res["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        try:
            res["text"] = await page.evaluate("() => document.body.innerText")
        except Exception:  # noqa: BLE001
            res["text"] = ""
    finally:
        await ctx.close()
    return res


async def _run_sessions(url: str, files: list[dict], timeout_s: float) -> list[dict]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            start = asyncio.Event()
            ready: list = []
            tasks = [asyncio.create_task(_session(browser, url, f, start, ready, int(timeout_s * 1000))) for f in files]
            # every session opens its page first (the default sample is scored, then cached)
            deadline = time.monotonic() + timeout_s
            while len(ready) + sum(t.done() for t in tasks) < len(tasks) and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            t_start = time.monotonic()
            start.set()
            results = await asyncio.gather(*tasks)
            for r in results:
                r["t_rel"] = r.get("t_done", float("nan")) - t_start
            return results
        finally:
            await browser.close()


def check(results: list[dict], files: list[dict]) -> list[str]:
    """Problems found: each session got its own answer, none saw another's."""
    problems = []
    shapes = {f["path"].name: f["expect"] for f in files if f["kind"] != "hostile"}
    for r, f in zip(results, files):
        if not r.get("ok"):
            problems.append(f"{r['file']}: no answer ({r.get('error')})")
            continue
        if r.get("exception_box"):
            problems.append(f"{r['file']}: an exception box was shown")
        for other, shape in shapes.items():
            if other != r["file"] and shape in r["text"]:
                problems.append(f"{r['file']}: shows {shape!r}, the answer of {other} (leak between sessions)")
        if f["kind"] == "hostile" and "Verdict:" in r["text"] and f["expect"] not in r["text"]:
            problems.append(f"{r['file']}: the hostile file did not get its own error")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds each session may take (default 600)")
    ap.add_argument("--max-rss-mib", type=float, default=4096.0, help="server memory bound checked (default 4096)")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing (apt-get install -y chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = make_files(tmp / "files", max(args.sessions, 3))
        port = _free_port()
        t0 = time.monotonic()
        proc = start_server(port, tmp / "server.log", {"LATENT_HEALTH_CACHE": str(tmp / "cache")})
        startup = time.monotonic() - t0
        peak = [_tree_rss(proc.pid)]
        base = peak[0]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], _tree_rss(proc.pid))
                time.sleep(0.2)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        try:
            t1 = time.monotonic()
            results = asyncio.run(_run_sessions(f"http://127.0.0.1:{port}", files, args.timeout))
            wall = time.monotonic() - t1
        finally:
            stop.set()
            th.join()
            end_rss = _tree_rss(proc.pid)
            stop_server(proc)
    problems = check(results, files)
    if peak[0] > args.max_rss_mib * 1024**2:
        problems.append(f"server peak RSS {peak[0] / 1024**2:.0f} MiB over the bound {args.max_rss_mib:.0f} MiB")
    long_done = next((r.get("t_rel") for r in results if r["kind"] == "long"), float("nan"))
    small_done = [r.get("t_rel", float("nan")) for r in results if r["kind"] == "small"]
    after = max((r.get("t_rel", float("nan")) for r in results), default=float("nan"))
    print(f"{len(results)} sessions; server started in {startup:.1f} s; pages opened and files scored in {wall:.1f} s; "
          f"every answer within {after:.1f} s of the common upload moment")
    print(f"server RSS: {base / 1024**2:.0f} MiB at start, peak {peak[0] / 1024**2:.0f} MiB, "
          f"{end_rss / 1024**2:.0f} MiB at the end")
    print(f"{'session file':34s} {'kind':8s} {'page s':>7s} {'answer s':>9s}  result")
    for r in results:
        what = "ok" if r.get("ok") else r.get("error", "failed")
        print(f"{r['file']:34s} {r['kind']:8s} {r.get('page_s', float('nan')):7.1f} {r.get('answer_s', float('nan')):9.1f}  {what}")
    if small_done:
        before = sum(1 for t in small_done if t < long_done)
        print(f"small sessions answered before the long one finished: {before} of {len(small_done)} "
              f"(long job done {long_done:.1f} s after the upload moment)")
    for p in problems:
        print("PROBLEM:", p)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "sessions": len(results), "startup_s": startup, "wall_s": wall, "rss_start": base, "rss_peak": peak[0],
            "rss_end": end_rss, "results": [{k: v for k, v in r.items() if k != "text"} for r in results],
            "problems": problems}, indent=2, default=str))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
