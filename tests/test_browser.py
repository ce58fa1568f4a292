"""End to end in a real browser: `streamlit run app.py` driven by headless Chromium (Playwright).

Skipped when /usr/bin/chromium is missing, except in CI (CI=true), where that is a failure.
The screenshots written to docs/screenshots/ are the README's: every page at 1440 px
(``<page>.png``) and at 1000 px (``<page>_1000.png``).

Every browser context routes all requests through :func:`_local_only`: a request to any
host other than the app's is recorded and aborted (so nothing leaves the machine even
when the check fails), and every test asserts that none was made — the tab icon, fonts,
plotly.js and Streamlit's own assets must all come from the local server.
"""
from __future__ import annotations

import csv
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

try:
    from playwright.sync_api import Error as PlaywrightError
except ImportError:  # pragma: no cover - playwright is a dev dependency
    PlaywrightError = Exception

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "docs" / "screenshots"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CHART = '[data-testid="stPlotlyChart"] .js-plotly-plot'


# Where the 21st-worst point of the sorted-statistics chart is on screen, and the slices of its
# neighbours (points are < 1 px apart, so the click may land on one of them).
CLICK_TARGET_JS = """(gd) => {
    const d = gd._fullData.find(t => t.name === 'slice statistic');
    const i = 20;
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
    const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
    const y = ya.type === 'log' ? Math.log10(d.y[i]) : d.y[i];
    const near = [];
    for (let k = i - 10; k <= i + 10; k++) near.push(d.customdata[k][0]);
    return {near: near, x: box.left + xa.l2p(d.x[i]), y: box.top + ya.l2p(y)};
}"""

SELECTED_SLICE_JS = """() => {
    const m = document.body.innerText.match(/Slice (\\d+): statistic/);
    return m ? Number(m[1]) : null;
}"""


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{CHROMIUM} is missing in CI: .ci/run must install Debian's chromium")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium chromium-driver)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _require_chromium()
    port = _free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer within 60 s: {log.read_text(errors='replace')[-2000:]}")
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
        assert proc.poll() is not None


@pytest.fixture(scope="module")
def browser():
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}

# Text the browser cuts with an ellipsis (CSS text-overflow) overflows its box: scrollWidth > clientWidth.
# Checked on metric values and labels, button labels, widget labels (checkbox, toggle, radio, input
# labels), display formulas (KaTeX) and plotly titles (which are clipped, not ellipsised).
TRUNCATED_JS = """() => {
    const bad = [];
    const cut = el => el.scrollWidth > el.clientWidth + 1;
    for (const m of document.querySelectorAll('[data-testid="stMetricValue"], [data-testid="stMetricLabel"]')) {
        const t = m.innerText.trim();
        if (t.endsWith('\u2026') || t.endsWith('...') || cut(m) || [...m.querySelectorAll('*')].some(cut))
            bad.push('metric: ' + t);
    }
    for (const b of document.querySelectorAll('[data-testid="stMain"] button')) {
        const t = b.innerText.trim();
        // the icon is a font ligature ("biotech") narrower than its text: only the label counts
        const label = [...b.querySelectorAll('p, span, div')].filter(e => !e.closest('[data-testid="stIconMaterial"]'));
        if (t && label.some(cut)) bad.push('button: ' + t);
    }
    for (const w of document.querySelectorAll('[data-testid="stMain"] [data-testid="stWidgetLabel"], '
                                             + '[data-testid="stMain"] [data-testid="stCheckbox"] label, '
                                             + '[data-testid="stMain"] [data-testid="stToggle"] label')) {
        const t = w.innerText.trim();
        // boxes only: an inline or hidden element has no client width to overflow
        const boxCut = el => el.clientWidth > 0 && cut(el);
        // the text boxes (not the switch or the hidden input beside them)
        const texts = [w, ...w.querySelectorAll('[data-testid="stMarkdownContainer"], p')];
        if (t && texts.some(boxCut)) bad.push('label: ' + t);
    }
    for (const k of document.querySelectorAll('[data-testid="stMain"] .katex-display')) {
        const box = (k.closest('[data-testid="stElementContainer"]') || k.parentElement).getBoundingClientRect();
        const r = (k.querySelector('.katex-html') || k).getBoundingClientRect();
        // KaTeX's own box can be a pixel or two narrower than its content (row spacing): 4 px of slack
        if (k.scrollWidth > k.clientWidth + 4 || r.right > box.right + 1)
            bad.push('formula: ' + k.textContent.trim().slice(0, 40));
    }
    for (const gd of document.querySelectorAll('.js-plotly-plot')) {
        const holder = gd.closest('[data-testid="stPlotlyChart"]') || gd;
        const box = holder.getBoundingClientRect();
        for (const t of gd.querySelectorAll('.gtitle, .gtitle-subtitle, .g-gtitle text, .legendtext, .xtitle, .ytitle')) {
            const r = t.getBoundingClientRect();
            if (r.width && (r.right > box.right + 1 || r.left < box.left - 1 || r.top < box.top - 1
                            || r.bottom > box.bottom + 1))
                bad.push('chart text: ' + t.textContent);
        }
    }
    return bad;
}"""


def _local_only(ctx, server_url: str | None = None) -> list[str]:
    """Abort and record every request to a host other than localhost (and the app's own)."""
    outside: list[str] = []
    allowed = set(LOCAL_HOSTS)
    if server_url:
        allowed.add(urllib.parse.urlsplit(server_url).hostname or "")

    def handle(route):
        url = route.request.url
        parts = urllib.parse.urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and (parts.hostname or "") not in allowed:
            outside.append(url)
            route.abort()
        else:
            route.continue_()

    ctx.route("**/*", handle)
    ctx.on("request", lambda r: (urllib.parse.urlsplit(r.url).scheme in ("http", "https", "ws", "wss")
                                 and (urllib.parse.urlsplit(r.url).hostname or "") not in allowed
                                 and r.url not in outside and outside.append(r.url)))
    return outside


def _new_page(browser, height=1000, width=1440):
    ctx = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    ctx.outside_requests = _local_only(ctx)
    page = ctx.new_page()
    page.set_default_timeout(90_000)
    return ctx, page


def _assert_local(ctx) -> None:
    assert ctx.outside_requests == [], f"requests left the machine: {ctx.outside_requests[:10]}"


def _wait_idle(page, timeout=90_000):
    """Wait until Streamlit is not running a script (the status widget disappears)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)
    page.wait_for_timeout(300)


RENDERED_JS = """() => {
    const charts = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')];
    return charts.every(c => c.querySelector('.main-svg .gtitle, .main-svg .xtick, .main-svg .bars, .main-svg .scatter'))
        && !document.querySelector('[data-testid="stSkeleton"], [data-testid="stStatusWidget"]');
}"""


def _wait_rendered(page, timeout=60_000) -> None:
    """Every chart drawn (not a placeholder) and no run in progress."""
    page.wait_for_function(RENDERED_JS, timeout=timeout)
    page.wait_for_timeout(500)


def _tabs(page) -> list:
    """The report's tabs in the main area (Inspect: Cloud, All slices, Companion metrics, Export)."""
    return page.locator('[data-testid="stMain"] [role="tab"]').all()


def _open_each_tab(page, check) -> None:
    """Open every tab of the page in turn and run ``check`` on it (its charts are drawn only when shown);
    the first tab is open again at the end."""
    tabs = _tabs(page)
    for tab in tabs:
        tab.click()
        page.wait_for_timeout(300)
        _wait_rendered(page)
        check(tab.inner_text().strip())
    if tabs:
        tabs[0].click()
        _wait_rendered(page)


def _shot(page, name: str, height: int = 2600, width: int = 1440) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("() => { for (const el of document.querySelectorAll('[data-testid=\"stMain\"], "
                  "[data-testid=\"stAppViewContainer\"], section')) el.scrollTo(0, 0); window.scrollTo(0, 0); }")
    page.set_viewport_size({"width": width, "height": height})
    page.wait_for_timeout(300)
    _wait_rendered(page)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


PAGES = [("inspect", "", "Inspect", 3000), ("monitor", "monitor", "Monitor", 2400),
         ("compare", "compare", "Compare", 2000), ("method", "method", "Method", 2600)]


def _open(page, server: str, path: str, heading: str) -> None:
    page.goto(f"{server}/{path}")
    page.get_by_role("heading", name=heading).first.wait_for()
    if path == "":
        page.get_by_text("Verdict:", exact=False).first.wait_for()
    _wait_idle(page)


def test_default_page_shows_full_report_and_every_page_renders(server, browser):
    ctx, page = _new_page(browser)
    try:
        t0 = time.monotonic()
        page.goto(server)
        page.wait_for_selector(CHART)
        page.get_by_text("Verdict:", exact=False).first.wait_for()
        first_chart_s = time.monotonic() - t0
        print(f"first chart and verdict of a cold server after {first_chart_s:.1f} s")
        # Issue 3: a full report within 30 s. Developer machines are shared by parallel sessions
        # (load averages above 10 on 2 cores), so outside CI the bound is looser.
        limit = 30 if os.environ.get("CI", "").lower() == "true" else 90
        assert first_chart_s < limit, f"first chart took {first_chart_s:.1f} s (limit {limit} s)"
        _wait_idle(page)
        # sorted statistics, the 2 x 2 slice views, cloud, p-values, ECF band, spectrum, per-dimension
        drawn = set()
        _open_each_tab(page, lambda tab: drawn.update(page.evaluate(
            "() => [...document.querySelectorAll('.js-plotly-plot')].filter(g => g.offsetParent)"
            ".map(g => g._fullLayout.title.text || '')")))
        assert len(drawn) >= 7, drawn
        assert page.get_by_text("healthy", exact=False).count() > 0
        # the worst slice of a healthy set says what the smallest of M p-values looks like by chance
        assert page.get_by_text("smallest of 1,024 per-slice p-values", exact=False).count() == 1
        # a healthy reference beside every companion metric
        assert page.get_by_text("N(0, I) reference", exact=False).count() >= 1
        # the tab icon is this server's own file (a material icon or an emoji is fetched from a CDN)
        icon = page.evaluate("() => [...document.querySelectorAll('link[rel*=\"icon\"]')].map(l => l.href)")
        assert icon and all(urllib.parse.urlsplit(u).hostname in LOCAL_HOSTS for u in icon), icon

        # a slice change reruns only the slice section (a fragment): nothing above it goes stale
        page.evaluate("""() => { window.__stale = new Set();
            window.__obs = new MutationObserver(ms => { for (const m of ms) {
                const t = m.target;
                if (t.getAttribute && t.getAttribute('data-stale') === 'true') window.__stale.add(t.innerText || ''); } });
            window.__obs.observe(document.body, {subtree: true, attributes: true, attributeFilter: ['data-stale']}); }""")
        before = page.evaluate(SELECTED_SLICE_JS)
        page.get_by_text("median", exact=True).first.click()
        page.wait_for_function(f"() => ({SELECTED_SLICE_JS})() !== {before}", timeout=60_000)
        _wait_idle(page)
        stale = page.evaluate("() => { window.__obs.disconnect(); return [...window.__stale]; }")
        assert stale, "the slice section should have been redrawn"
        outside = [t for t in stale if t.startswith(("Data:", "Verdict", "SIGReg", "Inspect", "All slices",
                                                    "Companion metrics", "Export"))]
        assert outside == [], f"a slice change reran more than its section: {outside}"

        shots = []
        for width in (1440, 1000):
            for name, path, heading, height in PAGES:
                page.set_viewport_size({"width": width, "height": height})  # tall: every section is drawn
                _open(page, server, path, heading)
                _wait_rendered(page)
                assert page.locator('[data-testid="stException"]').count() == 0, (name, width)
                assert page.locator('[data-testid="stMetricValue"]').count() > 0 or name != "inspect"

                def no_cuts(tab: str = "", name=name, width=width) -> None:
                    cut = page.evaluate(TRUNCATED_JS)
                    # every page, both widths, every tab: metric values and labels, buttons, widget labels,
                    # formulas, chart texts
                    assert cut == [], f"{name} {tab} at {width} px cuts: {cut}"
                no_cuts()
                if name == "inspect":  # a tab's charts are drawn when it is shown: each tab is checked
                    _open_each_tab(page, no_cuts)
                if name == "inspect":  # issue 23: verdict and slice on top, the rest in tabs (was 5 500-6 500 px)
                    height_px = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
                    print(f"Inspect page height at {width} px: {height_px} px")
                    assert [t.inner_text().strip() for t in _tabs(page)] == ["Cloud", "All slices",
                                                                            "Companion metrics", "Export"]
                shots.append(_shot(page, name if width == 1440 else f"{name}_{width}", height=height, width=width))
        for p in shots:
            assert p.stat().st_size > 10_000
        _assert_local(ctx)
    finally:
        ctx.close()


def test_upload_select_slice_and_download_csv(server, browser, tmp_path):
    rng = np.random.default_rng(7)
    z = (rng.standard_normal((1500, 32)) + np.where(rng.uniform(size=(1500, 1)) < 0.5, -1.5, 1.5)).astype(np.float32)
    upload = tmp_path / "clusters.npy"
    np.save(upload, z)

    ctx, page = _new_page(browser, height=1400)
    try:
        page.goto(server)
        page.wait_for_selector(CHART)
        _wait_idle(page)
        page.get_by_text("Upload", exact=True).click()
        page.locator('input[type="file"]').set_input_files(str(upload))
        page.get_by_text("clusters.npy", exact=False).first.wait_for()
        page.get_by_text("1,500 x 32", exact=False).first.wait_for()
        page.get_by_text("Verdict:", exact=False).first.wait_for()
        _wait_idle(page)

        # Click the 6th-worst slice in the sorted-statistics chart; its slice index is in customdata.
        # Streamlit may redraw the chart right after a run, so locate it afresh on each try.
        clicked = None
        for attempt in range(4):
            try:
                chart = page.locator(CHART).first
                chart.scroll_into_view_if_needed(timeout=10_000)
                page.wait_for_timeout(500)
                target = chart.evaluate(CLICK_TARGET_JS)
                before = page.evaluate(SELECTED_SLICE_JS)
                assert before not in target["near"]  # the worst slice is selected first, far from rank 21
                page.mouse.move(target["x"], target["y"])
                page.wait_for_timeout(300)
                page.mouse.click(target["x"], target["y"])
                page.wait_for_function(f"() => {target['near']}.includes(({SELECTED_SLICE_JS})())",
                                       timeout=20_000)
                clicked = page.evaluate(SELECTED_SLICE_JS)
                break
            except PlaywrightError:
                _wait_idle(page)
        assert clicked is not None, "clicking a point in the chart did not select its slice"
        assert page.get_by_label("Slice index").input_value() == str(clicked)
        _wait_idle(page)
        _shot(page, "inspect_upload", height=2200)

        # The sorted chart is the same figure for every slice (not redrawn on a slice change); after a click,
        # a selection made with the radio must not leave plotly's highlight on the clicked point.
        page.get_by_text("worst", exact=True).first.click()
        page.wait_for_function(f"() => ({SELECTED_SLICE_JS})() !== {clicked}", timeout=20_000)
        _wait_idle(page)
        highlighted = page.locator(CHART).first.evaluate(
            "(gd) => gd._fullData.filter(t => t.name === 'slice statistic').map(t => (t.selectedpoints || []).length)")
        assert highlighted in ([0], []), highlighted

        page.set_viewport_size({"width": 1440, "height": 1400})
        page.get_by_role("tab", name="Export").click()
        button = page.get_by_role("button", name="Per-slice CSV")
        button.scroll_into_view_if_needed()
        with page.expect_download() as info:
            button.click()
        dl = info.value
        text = Path(dl.path()).read_text()
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 1024  # the default number of slices
        assert {"slice", "statistic", "p_value"} <= set(rows[0])
        assert dl.suggested_filename == "clusters_lejepa_seed0_slices.csv"  # what and which set: no collisions
        worst = max(float(r["statistic"]) for r in rows)
        assert worst > 10  # two clusters: far from Gaussian on most slices

        # The standalone HTML report renders every figure with the network off.
        button = page.get_by_role("button", name="HTML report (offline)")
        with page.expect_download() as info:
            button.click()
        html_path = tmp_path / "report.html"
        info.value.save_as(str(html_path))
        offline = browser.new_context(offline=True)
        try:
            view = offline.new_page()
            view.goto(html_path.as_uri())
            view.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= 9",
                                   timeout=30_000)
            assert "Verdict:" in view.inner_text("body")
            assert "N(0, I) of the same shape" in view.inner_text("body")
        finally:
            offline.close()
        _assert_local(ctx)
    finally:
        ctx.close()


def test_monitor_page_shows_the_shipped_runs_and_refreshes_live(server, browser):
    ctx, page = _new_page(browser)
    try:
        page.goto(f"{server}/monitor")
        page.get_by_role("heading", name="Monitor").first.wait_for()
        page.wait_for_selector(CHART)
        page.get_by_text("collapsed at step", exact=False).first.wait_for()
        _wait_idle(page)
        # the stacked curves (SIGReg, p-value, RankMe, a scalar, verdict), the per-slice quantiles, a step's cloud
        assert page.locator(CHART).count() >= 3
        assert page.locator(CHART).filter(has_text="SIGReg per step").count() == 1
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.get_by_text("healthy since step", exact=False).count() > 0
        # live refresh on: the fragment keeps re-running without errors
        page.get_by_text("Live refresh").first.click()
        page.wait_for_timeout(6000)
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.locator(CHART).count() >= 3
        assert _shot(page, "monitor_runs", height=2200).stat().st_size > 20_000
        _assert_local(ctx)
    finally:
        ctx.close()
