"""In a real browser: Monitor (several runs, smoothing, a time axis), Compare (ranking, pairwise), the cloud view.

Reuses the Streamlit server and Chromium fixtures of tests/test_browser.py (a server on a
free port, headless Chromium at /usr/bin/chromium; skipped without it except in CI).
Writes docs/screenshots/monitor_views.png, compare_views.png and cloud.png.
"""
from __future__ import annotations

import pytest

from test_browser import CHART, _new_page, _shot, _wait_idle, browser, server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

NO_EXCEPTION = '[data-testid="stException"]'


def test_monitor_smoothing_time_axis_alert_table_and_cloud(server, browser):  # noqa: F811
    ctx, page = _new_page(browser, height=1200)
    try:
        page.goto(f"{server}/monitor")
        page.get_by_role("heading", name="Monitor").first.wait_for()
        page.wait_for_selector(CHART)
        _wait_idle(page)
        assert page.get_by_text("Alerts", exact=True).count() > 0
        assert page.get_by_text("alert: collapsed at step", exact=False).count() > 0  # the alert rule (issue 21)
        # smoothing 0.6 (60 presses of 0.01) and the relative time axis
        slider = page.locator('[data-testid="stSlider"]').filter(has_text="Smoothing").get_by_role("slider")
        slider.focus()
        slider.press("Home")
        for _ in range(60):
            slider.press("ArrowRight")
        _wait_idle(page)
        page.get_by_text("relative", exact=True).first.click()
        _wait_idle(page)
        page.wait_for_function(
            "() => [...document.querySelectorAll('.js-plotly-plot')].some(gd => gd._fullData && "
            "gd._fullData.some(t => (t.name || '').endsWith('(raw)')))", timeout=60_000)
        title = page.evaluate(
            "() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => gd._fullLayout.xaxis.title.text)[0]")
        assert "time since the run's first logged step" in title
        assert page.locator(NO_EXCEPTION).count() == 0
        assert _shot(page, "monitor_views", height=2600).stat().st_size > 30_000
        # the cloud of a step, further down
        page.set_viewport_size({"width": 1400, "height": 1200})
        head = page.get_by_text("One step: its embedding cloud", exact=False).first
        head.scroll_into_view_if_needed()
        page.wait_for_function(
            "() => [...document.querySelectorAll('.js-plotly-plot')].some(gd => gd._fullData && "
            "gd._fullData.some(t => t.type === 'scattergl'))", timeout=60_000)
        assert page.locator(NO_EXCEPTION).count() == 0
    finally:
        ctx.close()


def test_compare_ranking_and_pairwise(server, browser):  # noqa: F811
    ctx, page = _new_page(browser, height=1200)
    try:
        page.goto(f"{server}/compare")
        page.get_by_role("heading", name="Compare").first.wait_for()
        _wait_idle(page)
        # a third sample: full collapse (the default two are healthy and heavy-tailed)
        box = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Shipped samples")
        box.locator("input").first.click()
        page.keyboard.type("full-collapse")
        page.keyboard.press("Enter")
        page.keyboard.press("Escape")
        _wait_idle(page)
        page.get_by_role("button", name="Compare").last.click()
        page.get_by_text("Ranking, best first", exact=True).first.wait_for(timeout=240_000)
        _wait_idle(page, timeout=240_000)
        page.wait_for_function(
            "() => [...document.querySelectorAll('.js-plotly-plot')].some(gd => gd._fullData && "
            "gd._fullData.some(t => t.type === 'heatmap'))", timeout=60_000)
        assert page.locator(NO_EXCEPTION).count() == 0
        head = page.get_by_text("Ranking, best first", exact=True).first
        head.scroll_into_view_if_needed()
        page.evaluate("() => { const h = [...document.querySelectorAll('h3')].find(e => "
                      "e.innerText.startsWith('Ranking')); if (h) h.scrollIntoView(); }")
        page.set_viewport_size({"width": 1400, "height": 1800})
        page.wait_for_timeout(800)
        path = page.screenshot(path=str(_shot.__globals__["SHOTS"] / "compare_views.png"))
        assert len(path) > 30_000
        body = page.inner_text("body")
        assert "None" not in body.split("Ranking, best first")[1].split("Views")[0]
    finally:
        ctx.close()


def test_cloud_view_on_inspect(server, browser):  # noqa: F811
    ctx, page = _new_page(browser, height=1200)
    try:
        page.goto(server)
        page.wait_for_selector(CHART)
        page.get_by_text("Verdict:", exact=False).first.wait_for()
        _wait_idle(page)
        page.get_by_text("The cloud: rows on the top-2 principal axes", exact=False).first.scroll_into_view_if_needed()
        page.get_by_text("against an orthogonal principal axis", exact=False).first.click()
        _wait_idle(page)
        page.wait_for_function(
            "() => [...document.querySelectorAll('.js-plotly-plot')].some(gd => gd._fullLayout && "
            "/Slice \\d+ against an orthogonal/.test(gd._fullLayout.title.text || '') && gd._fullData.some(t => t.type === 'scattergl'))",
            timeout=60_000)
        assert page.locator(NO_EXCEPTION).count() == 0
        page.evaluate("() => { const gd = [...document.querySelectorAll('.js-plotly-plot')].find(g => "
                      " /Slice \\d+ against an orthogonal/.test(g._fullLayout.title.text || '')); gd.scrollIntoView(); "
                      "window.scrollBy(0, -220); }")
        page.wait_for_timeout(800)
        shots = _shot.__globals__["SHOTS"]
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "cloud.png"))
        assert (shots / "cloud.png").stat().st_size > 20_000
    finally:
        ctx.close()


DOTS_JS = """(gd) => {
    const d = gd._fullData.find(t => t.name === 'slice statistic');
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
    const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
    const at = i => ({x: box.left + xa.l2p(d.x[i]), y: box.top + ya.l2p(ya.type === 'log' ? Math.log10(d.y[i]) : d.y[i]),
                      slice: d.customdata[i][0]});
    return {spacing: xa.l2p(d.x[1]) - xa.l2p(d.x[0]), box: {left: box.left, top: box.top, width: box.width,
            height: box.height}, dots: [20, 21, 22, 23].map(at), range: xa.range, drag: [at(9).x, at(39).x]};
}"""


def test_clicking_a_dense_dot_selects_exactly_that_slice(server, browser):  # noqa: F811
    """Issue 23: 1024 dots 0.8-1.1 px apart: a click could not tell neighbours apart.  After a drag zoom
    on the rank axis (kept across the click's rerun, ``uirevision``) each click selects exactly its dot."""
    from test_browser import SELECTED_SLICE_JS

    ctx, page = _new_page(browser, height=1200)
    try:
        page.goto(server)
        page.wait_for_selector(CHART)
        page.get_by_text("Verdict:", exact=False).first.wait_for()
        _wait_idle(page)
        chart = page.locator(CHART).first
        chart.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        before = chart.evaluate(DOTS_JS)
        assert before["spacing"] < 1.5, before["spacing"]  # the dense case of the issue
        # a horizontal drag from rank ~10 to rank ~40 zooms the rank axis (plotly's dragmode "zoom")
        b = before["box"]
        y = b["top"] + b["height"] * 0.5
        x0, x1 = before["drag"]  # ranks 10 and 40
        page.mouse.move(x0, y)
        page.mouse.down()
        page.mouse.move((x0 + x1) / 2, y + 1, steps=5)
        page.mouse.move(x1, y + 2, steps=5)
        page.mouse.up()
        page.wait_for_function("(gd) => gd._fullLayout.xaxis.range[1] < 60 && gd._fullLayout.xaxis.range[0] > 0",
                               arg=chart.element_handle(), timeout=10_000)
        page.wait_for_timeout(500)
        for k in (0, 1, 3):  # neighbours in turn: each click selects exactly the dot under it
            after = chart.evaluate(DOTS_JS)
            assert after["spacing"] > 10, after  # zoomed: the dots are far apart now
            dot = after["dots"][k]
            page.mouse.move(dot["x"], dot["y"])
            page.wait_for_timeout(200)
            page.mouse.click(dot["x"], dot["y"])
            page.wait_for_function(f"() => ({SELECTED_SLICE_JS})() === {int(dot['slice'])}", timeout=30_000)
            _wait_idle(page)
            chart = page.locator(CHART).first
            assert chart.evaluate("(gd) => gd._fullLayout.xaxis.range[1]") < 60  # the zoom survived the rerun
        assert page.locator(NO_EXCEPTION).count() == 0
    finally:
        ctx.close()
