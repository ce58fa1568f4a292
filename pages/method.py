"""Method page: the statistic, the presets, how to read every plot, references."""
from __future__ import annotations

from pathlib import Path as _Path

import streamlit as st

if not st.session_state.get("_lh_shell"):
    # Streamlit runs a file of pages/ directly (its legacy pages/ mode) on the first request of a
    # fresh server and in AppTest.switch_page; go through the app shell (sidebar, navigation).
    import runpy

    runpy.run_path(str(_Path(__file__).resolve().parents[1] / "app.py"), run_name="__main__")
    st.stop()

import numpy as np
import pandas as pd

from sigreg_core.core.presets import PRESETS, REFERENCE_PRESETS

st.title("Method")
st.markdown(
    """
latent-health asks one question of an embedding set Z (N rows, D dims): **does it look like an
isotropic Gaussian N(0, I)?** That is the target SIGReg pushes a self-supervised encoder towards
(LeJEPA); collapse (every row the same point), dimensional collapse (a low-rank subspace), a shifted
mean, a wrong scale per direction, heavy tails and clusters all show up as a departure from it.
"""
)

st.header("The statistic")
st.markdown(
    "Draw M unit directions u₁…u_M (columns of A, D × M), project x = Z A, and score every slice "
    "(one column of x, N values) with the Epps–Pulley statistic against exactly N(0, 1):"
)
# two lines: on one, the formula ran past the right edge at 1000 px with the sidebar open
st.latex(r"\begin{aligned}\mathrm{EP}(x) = s(N)\sum_{k} c_k\Big[&\big(\tfrac1N\textstyle\sum_n \cos t_k x_n"
         r" - e^{-t_k^2/2}\big)^2 \\ &+ \big(\tfrac1N\textstyle\sum_n \sin t_k x_n\big)^2\Big]\end{aligned}")
st.latex(r"\mathrm{SIGReg}(Z) = \frac1M\sum_{m=1}^{M}\mathrm{EP}(Z u_m)")
st.markdown(
    r"""
- $t_k$ are the quadrature **nodes**, $c_k$ = quadrature weight × window $e^{-t_k^2/2}$, and $s(N) = N$
  for the scaled presets (1 otherwise). The bracket is the squared distance between the empirical
  characteristic function (ECF) of the slice and that of N(0, 1) at $t_k$.
- **Healthy floor.** For a slice that is exactly N(0, 1), $E[\mathrm{EP}] = \sum_k c_k (1 - e^{-t_k^2})$
  at every N: **1.0525** for `lejepa`, not 0.
- **Full collapse** (all rows at 0) gives $N\sum_k c_k\,\phi_k(1-\phi_k)^2 \approx 0.402\,N$ for `lejepa`.
- Non-Gaussian data grows about **linearly in N**: compare values only at equal N.
- **Null law.** One slice's statistic is a finite weighted sum of χ²(1) variables (weights from the
  covariance of cos/sin at the nodes), so per-slice p-values are exact (Imhof), without Monte Carlo.
  Slices share the data, so the overall p-value combines per-slice p-values in a dependence-robust way.
- **Random slices miss independent non-Gaussian coordinates** in high D (a random projection of many
  independent coordinates looks Gaussian by the central limit theorem). The *coordinate*, *principal*
  and *worst* slice families see them — pick one in the sidebar.
"""
)

st.header("Presets")
st.markdown(
    "A logged SIGReg value only reproduces with the same node grid, quadrature and scaling. "
    "The named presets are exactly the variants in public code:"
)
rows = []
for name, p in PRESETS.items():
    scaled = p.scale_by_n
    null = p.null_mean() if scaled else p.null_mean(n=1)
    rows.append({
        "preset": name,
        "nodes": f"{p.num_nodes} on [{p.t_min:g}, {p.t_max:g}]",
        "quadrature": p.quadrature,
        "window": "none" if p.bandwidth is None else f"exp(-t²/(2·{p.bandwidth:g}²))",
        "scale": "× N" if scaled else "none",
        "form": p.form,
        "null mean (one slice)": (f"{null:.6f}" if scaled else f"{null:.6f} / N") if np.isfinite(null) else "—",
        "matches": p.source + ("" if name in REFERENCE_PRESETS else " (custom form, not a default)"),
    })
# A static table: its cells wrap, so it fits the page at any width (a data grid scrolls sideways).
st.table(pd.DataFrame(rows), hide_index=True)
with st.expander("Nodes t_k and weights c_k of each preset"):
    chosen = st.selectbox("Preset", list(PRESETS), key="method_preset")
    p = PRESETS[chosen]
    st.caption(p.description)
    st.dataframe(pd.DataFrame({"t_k": p.nodes, "c_k": p.weights, "exp(-t_k²/2)": p.target}),
                 hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.6g") for c in ("t_k", "c_k", "exp(-t_k²/2)")})

st.header("How to read the plots (Inspect page)")
st.markdown(
    """
**Verdict card.** The verdict once, in its level's colour, with what it means. The word answers *is
it collapsing?* from the **health**: how many directions the rows really use (the effective rank of the
unit rows, exp of the entropy of (1/N) Σ u uᵀ), as a fraction q of what N(0, I) uses at the same N × D —
collapsed below two directions with the rows pointing one way (mean cosine above 0.9) or on an exact rank loss, else healthy (q ≥ 1/4), mild (≥ 1/16), marked
(≥ 1/64) or severe, and healthy whenever N(0, I) is not rejected (p ≥ 1e-3). Then the **distance from
N(0, I)**, the SIGReg target, once the conventions are undone (centring, one global scale; 0 = N(0, I),
1 = a set on one line) and the ways it departs; the **conventions** (L2-normalised rows, uncentred mean,
global scale) with the score after the matching rescale; where the set falls in the **atlas** of public
encoders and their untrained twins; and **what to try**, for a JEPA / SIGReg-trained encoder and for a
contrastive one. Rules and thresholds: docs/calibration.md.

**Per-slice statistics, sorted.** One point per slice, worst on the left. The green band runs up to the
95 % quantile of one healthy slice, the orange band up to the 99.9 % quantile; the dotted line is the exact
null mean. Healthy: the points straddle the dotted line and about 5 % rise above the green band. A few
points far above the band are a few bad directions (a shift or scale problem in part of the space); all
points far above it is global collapse. Click a point (or pick worst / median / best / an index) to select
that slice for the views below. The **p-value histogram** is flat when healthy and piles up at 0 otherwise.
The worst of M slices always has a small p-value: under the null the smallest of M uniform p-values is
about 0.69 / M (7e-4 for M = 1024), and the page says so when the selected slice is the smallest.
p-values below the smallest the exact law reports show as "< 1e-300".

**Projection histogram and Q-Q plot.** The N values of the selected slice against the N(0, 1) density, and
their quantiles against N(0, 1)'s. A spike: collapse; shifted histogram: mean shift; too wide or narrow:
scale; Q-Q points bending away at the ends: heavy or light tails; two humps: clusters. Mean, std, skewness
and excess kurtosis of the slice are printed beside (0, 1, 0, 0 when N(0, 1)).

**Characteristic function.** The real part of the ECF (mean cos tx) should follow exp(-t²/2) and the
imaginary part (mean sin tx) should stay at 0. Circles mark the quadrature nodes, where the statistic
actually looks. A shift shows in the imaginary part; a scale error as a real part too wide or too narrow;
collapse as a real part stuck at 1. **Weighted error per node** is what the statistic sums: the bars add
up to the slice's value, and show which frequencies carry the misfit. **ECF band** shows the ECFs of all
slices at every node (5–95 % and min–max): healthy is a thin band around the target.

**Companion metrics.** The covariance **eigen-spectrum** on a log scale (N(0, I): all eigenvalues near 1; a
cliff means dimensional collapse, a slope means anisotropy). **RankMe** (effective rank from the singular
values, in [1, min(N, D)]). The **std of L2-normalised rows** averaged over dims (0 = collapse, about 1/√D
when healthy). **VICReg** variance term (mean over dims of relu(1 − std)) and covariance term (sum of
squared off-diagonal covariances / D). **Per-dimension mean and std** (0 and 1 for N(0, I)). Beside each
metric the page shows what an N(0, I) set of the same shape scores (drawn from the exact laws), since
RankMe, the spectrum and the covariance term depend on N / D.
"""
)

st.header("References")
st.markdown(
    """
- R. Balestriero, Y. LeCun. *LeJEPA: Provable and Scalable Self-Supervised Learning Without the
  Heuristics.* arXiv:2511.08544 — SIGReg, Algorithm 1 (`lejepa-paper`), the isotropic Gaussian target.
- *LeWorldModel.* arXiv:2603.19312 — SIGReg in a world model; the `gist` variant in its appendix.
- T. W. Epps, L. B. Pulley (1983). *A test for normality based on the empirical characteristic function.*
  Biometrika 70(3), 723–726.
- J. P. Imhof (1961). *Computing the distribution of quadratic forms in normal variables.* Biometrika 48.
- Q. Garrido et al. (2023). *RankMe: Assessing the downstream performance of pretrained self-supervised
  representations by their rank.* ICML.
- A. Bardes, J. Ponce, Y. LeCun (2022). *VICReg: Variance-Invariance-Covariance Regularization for
  Self-Supervised Learning.* ICLR.
"""
)
