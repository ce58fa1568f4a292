"""Every p-value ``assess`` reports is calibrated on N(0, I): rejection at alpha = 0.05 and 0.2.

For each (N, D) a Monte Carlo null of B draws is built once (as the app caches it), then R >= 400
fresh healthy batches are assessed.  Given that null, the rejection rate of a Monte-Carlo-calibrated
p-value has the binomial noise of the R data draws plus that of the B null draws (the null's alpha
quantile is itself estimated): sd = sqrt(alpha (1 - alpha) (1/R + 1/B)).  Bounds are 3.5 sd.
Bonferroni is a bound (reject at most alpha) and is tested as one.  Run with ``-s`` for the table.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from sigreg_core.assessment.assess import assess

ALPHAS = (0.05, 0.2)
#: (N, D, M slices, B null draws, R healthy batches)
CONFIGS = [
    (256, 16, 64, 1000, 600),
    (1024, 32, 64, 400, 400),
    (4096, 64, 64, 400, 400),
]


def _reported(a) -> dict:
    return {
        "overall": a.p_value,
        "screen random": a.p_values["screens"]["random"],
        "screen axes": a.p_values["screens"]["axes"],
        "screen principal": a.p_values["screens"]["principal"],
        "Monte Carlo SIGReg": a.p_values["monte_carlo"]["p_value"],
        "per-slice (slice 0, exact law)": float(a.per_slice["p_value"].iloc[0]),
        "bonferroni (bound)": a.p_values["bonferroni"]["p_value"],
    }


@pytest.mark.slow
@pytest.mark.parametrize("n, d, m, b, r", CONFIGS, ids=[f"{c[0]}x{c[1]}" for c in CONFIGS])
def test_every_reported_pvalue_is_calibrated(n, d, m, b, r, tmp_path):
    rng = np.random.default_rng(n + d)
    ps: dict = {}
    for i in range(r):
        z = rng.standard_normal((n, d)).astype(np.float32)
        a = assess(z, num_slices=m, seed=7, null_draws=b, cache_dir=tmp_path)
        assert i == 0 or a.p_values["monte_carlo"]["source"] == "cache"
        assert a.verdict == "healthy" or a.p_value < 0.01
        for k, v in _reported(a).items():
            ps.setdefault(k, []).append(v)
    lines = []
    failures = []
    for k, v in ps.items():
        v = np.asarray(v, dtype=np.float64)
        rates = []
        for alpha in ALPHAS:
            rate = float(np.mean(v <= alpha))
            rates.append(rate)
            noise = 1.0 / r + (0.0 if k.startswith("per-slice") else 1.0 / b)
            sd = math.sqrt(alpha * (1 - alpha) * noise)
            ok = rate <= alpha + 3.5 * sd if k.startswith("bonferroni") else abs(rate - alpha) <= 3.5 * sd
            if not ok:
                failures.append(f"{k} at alpha = {alpha}: {rate:.3f} (bound +-{3.5 * sd:.3f})")
        lines.append(f"{n}x{d}  {k:32s} " + "  ".join(f"{x:.3f}" for x in rates))
    print("\n" + "\n".join(lines))
    assert not failures, failures
