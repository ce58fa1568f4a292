"""How tall the Inspect page is at 1440 px and 1000 px wide (issue 23: it was 5 500-6 500 px).

Starts ``streamlit run app.py`` (this checkout, and ``--against`` another one) with bench_app's
server helper, opens the default report in headless Chromium, waits until it has settled and prints
the main area's ``scrollHeight`` at both widths, with the first tab open.  Not a test.

Usage:  python benchmarks/bench_page_height.py [--against OTHER_CHECKOUT]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_app import CHART, CHROMIUM, LAUNCH_ARGS, ROOT, Server, settle  # noqa: E402

HEIGHT_JS = "() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight"


def measure(root: Path, p) -> dict:
    server = Server(None, root=root, prefetch=False)
    browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
    try:
        server.wait_healthy()
        out = {}
        for width in (1440, 1000):
            page = browser.new_context(viewport={"width": width, "height": 1000}).new_page()
            page.set_default_timeout(300_000)
            page.goto(server.url)
            page.wait_for_selector(CHART)
            settle(page, "document.body.innerText.includes('Verdict')")
            page.wait_for_timeout(1000)
            out[width] = page.evaluate(HEIGHT_JS)
            page.close()
        return out
    finally:
        browser.close()
        server.stop()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--against", metavar="CHECKOUT")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    roots = {"this": ROOT} if not args.against else {"this": ROOT, "against": Path(args.against).resolve()}
    with sync_playwright() as p:
        for label, root in roots.items():
            h = measure(root, p)
            print(f"{label} ({root}): Inspect page height {h[1440]} px at 1440 px, {h[1000]} px at 1000 px")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
