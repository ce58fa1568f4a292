"""Power and diagnosis of the default assess() call at N = 2048, D = 32 (issue 4)."""
from __future__ import annotations

import numpy as np
import pytest

from sigreg_core.assessment.assess import assess

N, D = 2048, 32


def _cases():
    rng = np.random.default_rng(2024)
    v = rng.standard_normal(D)
    v *= np.sqrt(D) / np.linalg.norm(v)  # rank one with the total variance of N(0, I)
    axis = rng.standard_normal((N, D))
    axis[:, 0] *= 5
    return {
        "full_collapse": (np.full((N, D), 0.7), "full_collapse", "collapsed"),
        "rank_one": (rng.standard_normal((N, 1)) * v[None, :], "dimensional_collapse", "collapsed"),
        "student_t3": (rng.standard_t(3, size=(N, D)), "heavy_tails", None),
        "one_axis_x5": (axis, "anisotropy", None),
        "shift_2": (rng.standard_normal((N, D)) + 2.0, "shift", None),
        "bimodal": (rng.choice([-1.0, 1.0], size=(N, D)), "multimodal", None),
    }


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("null-cache")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(_cases()))
def test_departures_are_flagged_with_the_right_mode(name, cache):
    z, mode, verdict = _cases()[name]
    a = assess(z.astype(np.float32), cache_dir=cache)  # the default call (random family, 1024 slices)
    assert a.verdict != "healthy", (name, a.verdict)
    assert a.p_value < 1e-6, (name, a.p_value)
    assert mode in a.modes, (name, a.modes)
    assert a.mode_evidence[mode]["evidence"]
    if verdict is not None:
        assert a.verdict == verdict


@pytest.mark.slow
def test_bimodal_is_invisible_to_random_slices_but_not_to_assess(cache):
    z = np.random.default_rng(5).choice([-1.0, 1.0], size=(N, D)).astype(np.float32)
    a = assess(z, cache_dir=cache)
    # the random-slice SIGReg alone stays near its null (CLT) ...
    assert a.sigreg_over_null < 1.6
    # ... while the coordinate screen sees kurtosis -2
    assert a.screens["axes"]["p_value"] < 1e-30
    assert a.per_slice["kurtosis"].min() > -1.0


@pytest.mark.slow
def test_healthy_batch_is_healthy(cache):
    z = np.random.default_rng(7).standard_normal((N, D)).astype(np.float32)
    a = assess(z, cache_dir=cache)
    assert a.verdict == "healthy", (a.verdict, a.modes, a.p_value)
    assert a.modes == []
    assert a.p_value > 1e-3
    assert 0.8 < a.sigreg_over_null < 1.25
