"""The row pass's outlier threshold against scipy.stats' chi-square (an independent oracle)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sigreg_core.assessment import rows


@pytest.mark.parametrize("n", [2, 97, 2048, 100_000, 10_000_000])
@pytest.mark.parametrize("d_eff", [0.3, 1.0, 1.7, 12.5, 64.0, 383.2, 3000.0])
def test_outlier_threshold_is_twice_the_chi_square_quantile_over_its_median(n, d_eff):
    d = max(d_eff, 1.0)
    q = stats.chi2.isf(1e-3 / n, d) / stats.chi2.median(d)
    expect = max(rows.OUTLIER_MIN_RATIO, rows.OUTLIER_FAR * q)
    assert rows._threshold(n, d_eff) == expect  # the same special functions: bit-identical


def test_outlier_threshold_grows_with_rows_and_is_floored():
    t = [rows._threshold(n, 4.0) for n in (10, 1000, 100_000)]  # low D_eff: far above the floor
    assert np.isfinite(t).all() and t[0] > rows.OUTLIER_MIN_RATIO and t[0] < t[1] < t[2]
    # high D_eff concentrates chi2 / median near 1: 2 q < 4, so the floor decides
    assert rows._threshold(2, 5000.0) == rows.OUTLIER_MIN_RATIO
