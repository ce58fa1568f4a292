"""Accuracy of the CPU kernel's fast float32 sincos and of the recurrence, measured (issue 23).

The kernel evaluates one sincos of ``h x`` (and of ``t_0 x``) per projected value; the
arguments reach |t x| of the grid's t_max times the data's largest projection, which for
wide or unscaled data is thousands or more.  The max abs error against float64 numpy
(of the same float32 argument) is measured here range by range; ``ACCURACY_TABLE`` is
what docs/statistic.md reports (``python tests/test_kernel_accuracy.py`` prints it).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("numba")

from sigreg_core.core import ecf  # noqa: E402

if ecf.numba_kernels() is None:  # pragma: no cover - LATENT_HEALTH_DISABLE_NUMBA=1
    pytest.skip("numba kernels disabled", allow_module_level=True)

from numba import njit  # noqa: E402

from sigreg_core.core import ecf_kernels as ek  # noqa: E402
from sigreg_core.core.presets import PRESETS  # noqa: E402

#: |a| range -> bound on max |error| of sin and cos (measured ~1.3e-7 everywhere up to 2**24)
ACCURACY_TABLE = [(0.0, 1.0), (1.0, 1e2), (1e2, 1e4), (1e4, 1e5), (1e5, 1e6), (1e6, 2.0**24)]
BOUND = 2.0e-7


@njit(fastmath=ek._FM)
def _sincos_loop(a, s, c):  # pragma: no cover - compiled; same flags as the kernels, vectorised loop
    for i in range(a.shape[0]):
        s[i], c[i] = ek._sincos32(a[i])


def _arguments(lo: float, hi: float, n: int = 400_000) -> np.ndarray:
    rng = np.random.default_rng(int(hi) % 1000 + 7)
    a = rng.uniform(lo, hi, n).astype(np.float32)
    # the octant boundaries (where the reduction switches quadrant) inside the range
    k = np.arange(np.ceil(lo / (np.pi / 4)), min(np.floor(hi / (np.pi / 4)), np.ceil(lo / (np.pi / 4)) + 20_000))
    b = (k * (np.pi / 4)).astype(np.float32)
    b = np.concatenate([b, np.nextafter(b, np.float32(np.inf)), np.nextafter(b, np.float32(0))])
    a = np.concatenate([a, b[(b >= lo) & (b <= hi)]]).astype(np.float32)
    return np.concatenate([a, -a])


def measure(lo: float, hi: float) -> tuple[float, float]:
    a = _arguments(lo, hi)
    s = np.empty_like(a)
    c = np.empty_like(a)
    _sincos_loop(a, s, c)
    a64 = a.astype(np.float64)
    return float(np.abs(s - np.sin(a64)).max()), float(np.abs(c - np.cos(a64)).max())


@pytest.mark.parametrize("lo, hi", ACCURACY_TABLE)
def test_fast_sincos_max_abs_error_over_the_range(lo, hi):
    es, ec = measure(lo, hi)
    assert es <= BOUND and ec <= BOUND, (lo, hi, es, ec)


def test_sincos_past_float32_resolution_stays_on_the_unit_circle_and_nan_propagates():
    a = np.array([2.0**24 + 2, 1e9, -3e38, 3.4e38, np.inf, -np.inf, np.nan] * 3, np.float32)
    s = np.empty_like(a)
    c = np.empty_like(a)
    _sincos_loop(a, s, c)
    fin = np.isfinite(a)
    np.testing.assert_allclose(s[fin].astype(np.float64) ** 2 + c[fin].astype(np.float64) ** 2, 1.0, atol=1e-6)
    assert np.isnan(s[~fin]).all() and np.isnan(c[~fin]).all()


@pytest.mark.parametrize("preset, scale", [("lejepa", 1e3), ("lejepa", 3e4), ("gist", 1e3), ("lejepa-paper", 5e3)])
def test_kernel_sums_at_large_arguments_match_float64_of_the_same_float32_steps(preset, scale):
    """The whole kernel (generated, vectorised) on wide data: e^{i k a} with a = fl32(h) * x in float32.

    The oracle takes the same float32 arguments a = fl32(fl32(h) x) and b = fl32(fl32(t_0) x)
    and forms cos/sin(b + k a) in float64; what remains is the kernel's own error (sincos,
    K - 1 recurrence steps, float32 block sums), bounded by K x 4e-7 per value.
    """
    p = PRESETS[preset]
    nodes = p.nodes
    t0, h = ecf.grid_of(nodes)
    g = torch.Generator().manual_seed(11)
    x = (torch.randn(200, 48, generator=g) * scale).float()
    c32, s32 = ecf.ecf_sums(x, nodes)
    xn = x.numpy()
    a = (np.float32(h) * xn).astype(np.float64)
    b = (np.float32(t0) * xn).astype(np.float64)
    k = np.arange(len(nodes))
    ang = b[:, :, None] + k * a[:, :, None]
    c_ref = np.cos(ang).sum(0)
    s_ref = np.sin(ang).sum(0)
    n = x.shape[0]
    tol = len(nodes) * 4e-7
    assert np.abs(c32.numpy() - c_ref).max() / n < tol
    assert np.abs(s32.numpy() - s_ref).max() / n < tol


def test_non_finite_values_give_nan_sums():
    x = torch.randn(64, 32)
    x[5, 3] = float("inf")
    x[7, 9] = float("nan")
    c, s = ecf.ecf_sums(x, PRESETS["lejepa"].nodes)
    assert torch.isnan(c[3]).any() and torch.isnan(c[9]).any() and torch.isfinite(c[0]).all()


if __name__ == "__main__":  # the table of docs/statistic.md
    print("| |a| range | max abs error sin | max abs error cos |")
    print("|---|---|---|")
    for lo, hi in ACCURACY_TABLE:
        es, ec = measure(lo, hi)
        print(f"| {lo:g} – {hi:g} | {es:.2e} | {ec:.2e} |")
