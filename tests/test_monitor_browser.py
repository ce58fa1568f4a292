"""In a real browser: six `sigreg demo-train` runs (3 lambdas x 2 seeds) grouped by lambda from a link,
and a click on a point of the SIGReg curve opening that step.

Writes docs/screenshots/monitor_grouped.png (1440 px) and monitor_grouped_1000.png (1000 px).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from test_browser import ROOT, _free_port, _new_page, _require_chromium, _shot, _wait_idle, browser  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAMBDAS = (0.0, 0.02, 0.09)

POINT_JS = """(gd) => {
    const d = gd._fullData.find(t => t.name === NAME && t.mode === 'lines+markers');
    const i = IDX;
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
    const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
    const y = ya.type === 'log' ? Math.log10(d.y[i]) : d.y[i];
    return {step: Number(d.x[i]), x: box.left + xa.l2p(d.x[i]), y: box.top + ya.l2p(y)};
}"""


@pytest.fixture(scope="module")
def grouped_server(tmp_path_factory):
    _require_chromium()
    root = tmp_path_factory.mktemp("grouped") / "runs"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LATENT_HEALTH_ALLOWED_ROOTS": str(root), "PYTHONUNBUFFERED": "1"}
    jobs = [subprocess.Popen([sys.executable, "-m", "sigreg_core.cli", "demo-train", "--run-dir",
                              str(root / f"lambda-{lam:g}-seed{seed}"), "--sigreg-weight", str(lam), "--seed",
                              str(seed), "--steps", "120", "--log-every", "10", "--quiet"], cwd=ROOT, env=env)
            for lam in LAMBDAS for seed in (1, 2)]
    assert [j.wait(timeout=600) for j in jobs] == [0] * 6
    port = _free_port()
    log = root.parent / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                                 "--server.port", str(port), "--server.address", "127.0.0.1",
                                 "--browser.gatherUsageStats", "false"], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-2000:]
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def test_grouped_view_from_a_link_and_click_to_open_a_step(grouped_server, browser):  # noqa: F811
    ctx, page = _new_page(browser, height=1200)
    try:
        page.goto(f"{grouped_server}/monitor?group=lambda&smooth=0")
        page.get_by_role("heading", name="Monitor").first.wait_for()
        page.get_by_text("SIGReg per group", exact=False).first.wait_for()
        _wait_idle(page)
        body = page.inner_text("body")
        assert "lambda=0 (n = 2)" in body and "lambda=0.02 (n = 2)" in body and "lambda=0.09 (n = 2)" in body
        assert "Runs × config" in body and "6 run(s) found" in body
        assert page.locator('[data-testid="stException"]').count() == 0
        assert _shot(page, "monitor_grouped", height=2400, width=1440).stat().st_size > 30_000
        assert _shot(page, "monitor_grouped_1000", height=2600, width=1000).stat().st_size > 30_000
        # click the 6th point of one run's SIGReg curve: that step opens below (its cloud)
        page.set_viewport_size({"width": 1440, "height": 1200})
        gd = page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').filter(
            has_text="SIGReg per step").first
        gd.scroll_into_view_if_needed()
        _wait_idle(page)
        # a click that lands while the page is still re-running can be dropped by the browser's chart
        # (it redraws under the pointer): measure the point again and click again, up to three times
        for attempt in range(3):
            pt = gd.evaluate(POINT_JS.replace("NAME", "'lambda-0-seed1'").replace("IDX", "5"))
            page.mouse.click(pt["x"], pt["y"])
            try:
                page.get_by_text(f"lambda-0-seed1, step {int(pt['step'])}: top-2 principal axes").first.wait_for(
                    timeout=60_000)
                break
            except Exception:
                if attempt == 2:
                    raise
                _wait_idle(page)
        assert f"lambda-0-seed1@{int(pt['step'])}" in page.url.replace("%40", "@")  # the opened step is in the link
    finally:
        ctx.close()
