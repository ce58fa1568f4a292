"""The comparison HTML (``sigreg compare --html`` and the Compare page's download) in a real browser:
styled like the Inspect report, no network, nothing wider than the window at 1000 and 1440 px.

Writes docs/screenshots/compare_report.png (1440 px) and compare_report_1000.png (1000 px).
"""
from __future__ import annotations

import pytest

from test_browser import CHROMIUM, LAUNCH_ARGS, ROOT, SHOTS, _require_chromium  # noqa: F401

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    from sigreg_core.compare.comparison import compare_sets
    from sigreg_core.compare.exports import comparison_html
    from sigreg_core.inputs.samples import load_sample

    names = ["healthy", "heavy-tailed", "dimensional-collapse"]
    cmp = compare_sets({n: load_sample(n) for n in names}, num_slices=256, n_boot=60, null_draws=0)
    path = tmp_path_factory.mktemp("cmp") / "comparison.html"
    path.write_text(comparison_html(cmp, title="latent-health comparison: samples",
                                    source={"files": [f"sample_data/{n}.safetensors" for n in names]}),
                    encoding="utf-8")
    return path


@pytest.mark.parametrize("width,shot", [(1440, "compare_report"), (1000, "compare_report_1000")])
def test_comparison_html_fits_the_window_offline(report_file, width, shot):
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        try:
            ctx = b.new_context(viewport={"width": width, "height": 1000})
            outside = []

            def route(r):
                if r.request.url.startswith("file:"):
                    r.continue_()
                else:
                    outside.append(r.request.url)
                    r.abort()

            ctx.route("**/*", route)
            page = ctx.new_page()
            page.goto(report_file.as_uri())
            page.wait_for_function("() => { const g = [...document.querySelectorAll('.js-plotly-plot')];"
                                   " return g.length >= 5 && g.every(x => x.querySelector('.main-svg')); }",
                                   timeout=60_000)
            assert outside == []
            assert page.evaluate("() => document.documentElement.scrollWidth") <= width  # no sideways scroll
            wide = page.evaluate("() => [...document.querySelectorAll('table, .card, section')]"
                                 ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).length")
            assert wide == 0
            text = page.evaluate("() => document.body.innerText")
            for heading in ("Healthiest: healthy", "Ranking, best first", "Every pair", "Every set against healthy",
                            "Paired over slices", "Settings", "Figures"):
                assert heading in text, heading
            assert "preset_config" not in text and "{" not in text.split("Figures")[0]  # no raw dumps
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)
            ctx.close()
        finally:
            b.close()
    assert (SHOTS / f"{shot}.png").stat().st_size > 30_000
