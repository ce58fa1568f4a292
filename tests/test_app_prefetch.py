"""The background prefetch of the other presets (sigreg_core/present/prefetch.py, issue 23).

Oracle: the same report built directly (build_report) in the test, compared field by field;
the prefetched report must be exactly what a click would have built.
"""
from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest

import sigreg_core.present.report as report_mod
from sigreg_core.present import prefetch as PF
from sigreg_core.present.report import Settings
from sigreg_core.present.report_cache import ReportCache

SETTINGS = Settings(num_slices=64, seed=3)
PRESETS = ["lejepa", "lejepa-paper", "gist"]


@pytest.fixture
def z():
    return np.random.default_rng(11).standard_normal((512, 16)).astype(np.float32)


@pytest.fixture
def counted(monkeypatch):
    calls = []
    real = report_mod.build_report

    def counting(x, settings, **kw):
        calls.append(settings)
        return real(x, settings, **kw)

    monkeypatch.setattr(report_mod, "build_report", counting)
    return calls


def _wait(pf: PF.Prefetcher, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not pf.idle():
        assert time.monotonic() < deadline, "prefetch did not finish"
        time.sleep(0.05)
    time.sleep(0.1)


def test_prefetched_reports_are_the_reports_a_click_builds(z, counted):
    cache = ReportCache(16)
    pf = PF.Prefetcher(cache, presets=PRESETS)
    try:
        assert pf.want_reports("d", z, SETTINGS)
        _wait(pf)
    finally:
        pf.stop()
    others = [dataclasses.replace(SETTINGS, preset=p) for p in PRESETS if p != SETTINGS.preset]
    assert [s.preset for s in counted] == [s.preset for s in others]  # the page's own preset is not rebuilt
    for s in others:
        assert (("d", s) in cache) and pf.is_prefetched("d", s)
        got = cache.get("d", s)
        direct = report_mod.build_report(z, s)  # counted too: one more call per preset
        np.testing.assert_array_equal(got.statistic, direct.statistic)
        np.testing.assert_array_equal(got.p_values, direct.p_values)
        assert got.summary["verdict"] == direct.summary["verdict"]
        assert got.summary["preset"] == s.preset
    assert not pf.errors


def test_worker_waits_while_the_page_computes(z, counted):
    cache = ReportCache(16)
    pf = PF.Prefetcher(cache, presets=PRESETS)
    try:
        with PF.foreground():
            pf.want_reports("d", z, SETTINGS)
            time.sleep(1.0)
            assert counted == []  # nothing runs beside a computation the user waits for
        _wait(pf)
        assert len(counted) == 2
    finally:
        pf.stop()


def test_newer_request_replaces_older_and_large_sets_are_not_prefetched(z, counted, monkeypatch):
    cache = ReportCache(16)
    pf = PF.Prefetcher(cache, presets=PRESETS)
    try:
        with PF.foreground():  # both requests queue while the page computes: only the newer one runs
            pf.want_reports("old", z, SETTINGS)
            pf.want_reports("new", z[:256], SETTINGS)
        _wait(pf)
        assert len(counted) == 2 and all(("new", s) in cache for s in counted)
        assert not any(("old", s) in cache for s in counted)
        monkeypatch.setattr(PF, "MAX_PREFETCH_VALUES", z.size - 1)
        assert pf.want_reports("big", z, SETTINGS) is False
    finally:
        pf.stop()


def test_a_report_being_built_is_waited_for_not_built_twice(z, counted):
    cache = ReportCache(4)
    out = []
    threads = [threading.Thread(target=lambda: out.append(cache.get_or_build("d", SETTINGS, z))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(counted) == 1 and len(out) == 3 and out[0] is out[1] is out[2]
    assert not cache.building("d", SETTINGS)


def test_a_failed_build_leaves_the_key_free_for_the_next_try(z, monkeypatch):
    cache = ReportCache(4)
    with pytest.raises(ValueError):
        cache.get_or_build("d", SETTINGS, np.zeros((3,), np.float32))  # not (N, D): refused
    assert not cache.building("d", SETTINGS)
    assert cache.get_or_build("d", SETTINGS, z).num_slices == 64


def test_switch_reads_the_environment(monkeypatch):
    monkeypatch.setenv(PF.PREFETCH_ENV, "0")
    assert not PF.enabled()
    monkeypatch.setenv(PF.PREFETCH_ENV, "1")
    assert PF.enabled()


def test_reports_wait_for_the_generic_kernels_in_non_blocking_mode(z, counted, monkeypatch):
    """Issue 23: a report prefetched on the torch path (before any kernel is compiled) is slow, and a click on
    its preset waits for it; so in the dashboard's non-blocking mode the worker first waits for the generic
    kernels."""
    from sigreg_core.core import kernel_warmup as kw

    monkeypatch.setattr(kw, "_NONBLOCKING", True)
    monkeypatch.setattr(kw, "_ready", set())
    monkeypatch.setattr(kw, "request", lambda keys, front=False: None)  # nothing compiles by itself here
    cache = ReportCache(16)
    pf = PF.Prefetcher(cache, presets=PRESETS)
    try:
        assert pf.want_reports("d", z, SETTINGS)
        time.sleep(1.5)
        assert counted == []  # waiting for the generic kernels
        with kw._lock:
            kw._ready.add(kw.GENERIC)
            kw._lock.notify_all()
        _wait(pf)
    finally:
        pf.stop()
    assert sorted(s.preset for s in counted) == sorted(p for p in PRESETS if p != SETTINGS.preset)
