"""The Monitor page in a real browser (headless Chromium): the shipped runs, live refresh on, screenshot.

The server runs a minimal copy of the app shell (as in tests/test_app_monitor.py) so the
page is tested before app.py routes its Monitor entry here.  The screenshot is written to
docs/monitor.png.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CHART = '[data-testid="stPlotlyChart"] .js-plotly-plot'
SHOT = ROOT / "docs" / "monitor.png"

SHELL = '''
import streamlit as st
from sigreg_core.report import Settings
pages = [st.Page("pages/monitor.py", title="Monitor", default=True), st.Page("pages/inspect.py", title="Inspect")]
page = st.navigation(pages)
st.session_state["lh_settings"] = Settings(num_slices=64)
st.session_state["_lh_shell"] = True
page.run()
'''


def _require_chromium():
    if not CHROMIUM.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing in CI")
        pytest.skip(f"{CHROMIUM} not installed")
    pytest.importorskip("playwright")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    _require_chromium()
    d = tmp_path / "shell"
    d.mkdir()
    (d / "pages").symlink_to(ROOT / "pages", target_is_directory=True)
    (d / "app_shell.py").write_text(SHELL)
    port = _free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "LATENT_HEALTH_CACHE": str(tmp_path / "cache")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(d / "app_shell.py"), "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited: {log.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_monitor_page_in_a_browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        try:
            page = b.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(server)
            page.get_by_role("heading", name="Monitor").first.wait_for()
            page.wait_for_selector(CHART)
            page.get_by_text("collapsed at step", exact=False).first.wait_for()
            page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
            assert page.locator(CHART).count() >= 6  # SIGReg, p-value, RankMe, verdict, quantiles, a scalar
            assert page.locator('[data-testid="stException"]').count() == 0
            assert page.get_by_text("healthy since step", exact=False).count() > 0
            # live refresh on: the fragment keeps re-running without errors
            page.get_by_text("Live refresh").first.click()
            page.wait_for_timeout(6000)
            assert page.locator('[data-testid="stException"]').count() == 0
            assert page.locator(CHART).count() >= 6
            page.evaluate("() => { for (const el of document.querySelectorAll('[data-testid=\"stMain\"], section'))"
                          " el.scrollTo(0, 0); window.scrollTo(0, 0); }")
            page.set_viewport_size({"width": 1400, "height": 2200})
            page.wait_for_timeout(1500)
            page.screenshot(path=str(SHOT))
            assert SHOT.stat().st_size > 20_000
        finally:
            b.close()
