"""Large Monte Carlo nulls in the background (sigreg_core/present/background.py, issue 23): the page is
usable at once, shows progress and a time left, can cancel, and swaps in the full report when done."""
from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import sigreg_core.present.report as report_mod
from sigreg_core.present import background as BG
from sigreg_core.present.report import Settings
from sigreg_core.present.report_cache import ReportCache

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def z():
    return np.random.default_rng(5).standard_normal((300, 8)).astype(np.float32)


def _wait(cond, timeout=180.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_job_reports_progress_and_an_estimate_and_builds_the_same_report(z, tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_HEALTH_CACHE", str(tmp_path))  # a fresh null: a cached one finishes before any progress
    s = Settings(num_slices=32, null_draws=200, seed=1)
    cache = ReportCache(4)
    bg = BG.BackgroundBuilds(cache)
    job = bg.start("d", s, z)
    assert bg.start("d", s, z) is job  # not started twice
    seen = []
    while job.running:
        seen.append((job.fraction, job.seconds_left()))
        time.sleep(0.02)
    assert job.done and not job.error and ("d", s) in cache
    assert any(left is not None and left > 0 for f, left in seen if 0.02 <= f < 1)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions)  # progress only moves forward
    direct = report_mod.build_report(z, s)  # the oracle: what the foreground would have built
    got = cache.get("d", s)
    assert got.summary["null_draws"] == 200 == direct.summary["null_draws"]
    assert got.summary["p_value"] == direct.summary["p_value"]
    np.testing.assert_array_equal(got.p_values, direct.p_values)


def test_estimate_is_the_measured_rate():
    job = BG.Job(key=("k",))
    job.started = time.perf_counter() - 10.0
    job.fraction = 0.25
    assert abs(job.seconds_left() - 30.0) < 0.5  # 10 s for a quarter: 30 s for the rest
    job.fraction = 0.01
    assert job.seconds_left() is None  # too early to say


def test_cancel_stops_at_the_next_draw_and_caches_nothing(z, tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_HEALTH_CACHE", str(tmp_path / "cache"))
    s = Settings(num_slices=32, null_draws=1000, seed=2)
    cache = ReportCache(4)
    bg = BG.BackgroundBuilds(cache)
    job = bg.start("d", s, z)
    _wait(lambda: job.fraction > 0.05 or not job.running)
    bg.cancel("d", s)
    _wait(lambda: not job.running)
    assert job.cancelled and not job.done and ("d", s) not in cache
    assert job.fraction < 0.9
    assert not list((tmp_path / "cache").glob("null-*.npz"))  # no partial null written
    assert bg.start("d", s, z) is job  # a cancelled build is not restarted by itself ...
    again = bg.start("d", s, z, again=True)  # ... only when asked
    assert again is not job
    bg.cancel("d", s)
    _wait(lambda: not again.running)


def _npy(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_page_is_usable_at_once_then_swaps_in_the_full_report(z):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    at.session_state["lh_num_slices"] = 32
    at.session_state["lh_null_draws"] = 200
    at.run()
    at.radio(key="insp_source").set_value("Upload").run()
    at.file_uploader(key="insp_upload").set_value(("bg.npy", _npy(z), "application/octet-stream")).run()
    assert not at.exception, [e.message for e in at.exception]
    # the report without the null is on the page, with the background progress above it
    assert any(t.value.startswith("**Verdict:") for t in list(at.success) + list(at.info) + list(at.warning) + list(at.error))
    caps = [c.value for c in at.caption]
    assert not any("Monte Carlo null: 200 draws" in c for c in caps)
    deadline = time.monotonic() + 180
    while not any("Monte Carlo null: 200 draws" in c.value for c in at.caption):
        assert time.monotonic() < deadline, [c.value for c in at.caption]
        time.sleep(0.5)
        at.run()
        assert not at.exception, [e.message for e in at.exception]
    assert not [b for b in at.button if b.label == "Cancel"]


def test_page_cancel_leaves_the_quick_report_and_says_so(z):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    at.session_state["lh_num_slices"] = 32
    at.session_state["lh_null_draws"] = 1000
    at.session_state["lh_seed"] = 77
    at.run()
    at.radio(key="insp_source").set_value("Upload").run()
    at.file_uploader(key="insp_upload").set_value(("bg2.npy", _npy(z[:200]), "application/octet-stream")).run()
    assert not at.exception, [e.message for e in at.exception]
    cancel = [b for b in at.button if b.label == "Cancel"]
    assert cancel, [b.label for b in at.button]
    cancel[0].click().run()
    time.sleep(1.0)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("cancelled" in w.value for w in at.warning), [w.value for w in at.warning]
    assert any(t.value.startswith("**Verdict:") for t in list(at.success) + list(at.info) + list(at.warning) + list(at.error))
    assert [b for b in at.button if b.label == "Run again"]
