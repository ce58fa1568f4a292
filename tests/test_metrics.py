"""Companion metrics against independent numpy formulas and known cases."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sigreg_core.assessment.metrics import MomentSums, companion_metrics, metrics_from_sums, rankme


def _oracle(z: np.ndarray) -> dict:
    z = z.astype(np.float64)
    n, d = z.shape
    s = np.linalg.svd(z, compute_uv=False)
    p = s / s.sum() + 1e-7
    cov = np.cov(z, rowvar=False).reshape(d, d)
    zn = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    var = z.var(0, ddof=1)
    off = cov.copy()
    np.fill_diagonal(off, 0)
    return {
        "rankme": math.exp(-np.sum(p * np.log(p))),
        "eigenvalues": np.sort(np.linalg.eigvalsh(cov))[::-1],
        "normalized_std": zn.std(0, ddof=1).mean(),
        "vicreg_variance": np.mean(np.maximum(0, 1 - np.sqrt(var + 1e-4))),
        "vicreg_covariance": (off**2).sum() / d,
        "dim_mean": z.mean(0),
        "dim_std": z.std(0),
    }


@pytest.mark.parametrize("shift", [0.0, 3.0, 1e4])
def test_metrics_match_numpy_oracle(shift):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((500, 12)) @ rng.standard_normal((12, 12)) * 0.5 + shift
    got = companion_metrics(z.astype(np.float64), chunk_rows=77)  # several chunks
    exp = _oracle(z)
    rtol = 1e-9 if shift < 1e3 else 1e-5
    for k in ["rankme", "normalized_std", "vicreg_variance", "vicreg_covariance"]:
        assert got[k] == pytest.approx(exp[k], rel=rtol, abs=1e-12), k
    np.testing.assert_allclose(got["eigenvalues"], np.clip(exp["eigenvalues"], 0, None), rtol=rtol, atol=1e-9)
    np.testing.assert_allclose(got["dim_mean"], exp["dim_mean"], rtol=1e-12)
    np.testing.assert_allclose(got["dim_std"], exp["dim_std"], rtol=rtol)


def test_chunked_equals_one_shot_and_tensor_equals_numpy():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((333, 7)).astype(np.float32)
    a = companion_metrics(z, chunk_rows=10)
    b = companion_metrics(torch.from_numpy(z), chunk_rows=100000)
    # float32 input: centred products are float32 GEMM blocks summed in float64; with a
    # 10-row first chunk the shift is crude, so allow 1e-4 (vicreg_covariance is a small
    # sum of squared off-diagonal terms and feels the float32 rounding most)
    for k in ["rankme", "normalized_std", "vicreg_variance", "vicreg_covariance", "spectrum_slope"]:
        assert a[k] == pytest.approx(b[k], rel=1e-4)
    # float64 input stays in float64: chunking is exact to rounding
    a64 = companion_metrics(z.astype(np.float64), chunk_rows=10)
    b64 = companion_metrics(torch.from_numpy(z.astype(np.float64)), chunk_rows=100000)
    for k in ["rankme", "normalized_std", "vicreg_variance", "vicreg_covariance", "spectrum_slope"]:
        assert a64[k] == pytest.approx(b64[k], rel=1e-10)
        assert a64[k] == pytest.approx(a[k], rel=1e-4)


def test_known_cases():
    rng = np.random.default_rng(2)
    d = 16
    # rank one: RankMe ~ 1
    z1 = rng.standard_normal((400, 1)) * rng.standard_normal((1, d))
    assert companion_metrics(z1)["rankme"] == pytest.approx(1.0, abs=1e-3)
    # orthonormal columns scaled equally: all singular values equal -> RankMe = D
    q, _ = np.linalg.qr(rng.standard_normal((400, d)))
    assert companion_metrics(q)["rankme"] == pytest.approx(d, rel=1e-4)
    # healthy N(0, I): normalised std about 1/sqrt(D), VICReg terms small
    z = rng.standard_normal((20000, d))
    m = companion_metrics(z)
    assert m["normalized_std"] == pytest.approx(1 / math.sqrt(d), rel=0.02)
    assert m["vicreg_variance"] < 0.02
    assert m["vicreg_covariance"] < 0.02
    assert abs(m["spectrum_slope"]) < 0.1
    # constant batch: normalised std 0, VICReg variance ~ 1 - 0.01
    c = np.ones((100, d))
    mc = companion_metrics(c)
    assert mc["normalized_std"] == pytest.approx(0.0, abs=1e-7)
    assert mc["vicreg_variance"] == pytest.approx(1 - math.sqrt(1e-4), rel=1e-9)
    assert mc["rms_std"] == pytest.approx(0.0, abs=1e-7)


def test_rankme_bounds_and_sums_additivity():
    assert rankme([1.0, 0, 0]) == pytest.approx(1.0, abs=1e-5)
    assert rankme(np.ones(9)) == pytest.approx(9.0, rel=1e-5)
    rng = np.random.default_rng(3)
    z = rng.standard_normal((200, 5))
    s1 = MomentSums(5)
    s1.set_shift(np.zeros(5))
    s1.update(z[:50]).update(z[50:])
    s2 = MomentSums(5)
    s2.set_shift(np.zeros(5))
    s2.update(z)
    a, b = metrics_from_sums(s1), metrics_from_sums(s2)
    assert a["rankme"] == pytest.approx(b["rankme"], rel=1e-12)


def test_bad_shape_is_refused():
    with pytest.raises(ValueError, match="shape"):
        companion_metrics(np.zeros(10))
    with pytest.raises(ValueError, match="at least 2 rows"):
        companion_metrics(np.zeros((1, 3)))
