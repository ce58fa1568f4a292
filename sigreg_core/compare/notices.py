"""The Compare page's texts: captions and notice lines built from the sets and the comparison.

Set names come from file names, so every name is escaped with :func:`sigreg_core.util.text.md`
before it goes into markdown.  The significance wording follows :mod:`sigreg_core.compare.statistics`:
a delta is significant when its bootstrap interval (percentile, centred on the observed delta)
excludes 0; the paired slice test is the Wilcoxon signed-rank test with its variance inflated by
the design effect (Kish 1965) estimated from the bootstrap.  No Streamlit here.
"""
from __future__ import annotations

from typing import Optional

from sigreg_core.present.compare_tables import fmt, interval_cell
from sigreg_core.util.text import md

__all__ = ["RANKING_NOTE", "PAIRWISE_NOTE", "DELTAS_NOTE", "PAIRED_NOTE", "INTRO", "views_caption", "set_notices",
           "roots_caption", "encoder_caption", "load_error", "probe_error", "rows_captions", "summary_caption",
           "quality_caption", "pair_caption", "reference_lines", "deltas_caption", "slice_line"]

INTRO = ("Did the latent space get healthier? Put checkpoints, runs or models side by side: every set is scored "
         "on the **same slices** (same seed and family) and, by default, the **same number of rows**, because "
         "SIGReg grows with N for non-Gaussian data.")
RANKING_NOTE = ("Ranked as the verdict ranks (the verdict, then the share of N(0, I)'s directions the set uses, then "
                "its distance from N(0, I); docs/calibration.md). SIGReg is shown as a multiple of its exact null "
                "mean (1 = the healthy floor). Intervals: bootstrap over rows; "
                "“against the set above”: the bootstrap interval of the SIGReg delta to the set ranked just above.")
PAIRWISE_NOTE = ("Cell (row a, column b): SIGReg(a) − SIGReg(b) in units of b's null mean, with its bootstrap "
                 "interval; green: a significantly healthier, vermilion: a significantly less healthy, grey: no "
                 "significant difference.")
DELTAS_NOTE = ("each set (same directions), centred on the observed delta; significant when the interval "
               "excludes 0. Lower SIGReg and VICReg variance, higher RankMe and std of normalised rows are "
               "healthier; the VICReg covariance term depends on scale and gets no direction.")
PAIRED_NOTE = ("Approximate: the slices share the data, so their statistics are correlated. The plain p-values "
               "treat them as independent and overstate the evidence when M ≫ D; the adjusted ones inflate the "
               "variance by the design effect estimated from the bootstrap. The bootstrap intervals above are the "
               "evidence; this test says how consistently the slices move.")


def views_caption(label: str, shape: tuple) -> Optional[str]:
    """For (V, N, D) views: how they are scored; None for an (N, D) set."""
    if len(shape) != 3:
        return None
    return (f"{md(label)}: {shape[0]} views of {shape[1]:,} x {shape[2]}; every view is scored on the "
            f"same slices, SIGReg averaged over the views, rows resampled jointly.")


def set_notices(entries: list) -> list:
    """The loaders' notices of every ``(name, record, source)`` entry, each after its set's name."""
    return [f"{md(name)}: {md(note, None)}" for name, got, _src in entries for note in got["notices"]]


def roots_caption(roots) -> str:
    """The directories server paths must lie below."""
    return ("Allowed directories: " + (", ".join(md(r, None) for r in roots) or "none")
            + " (set `LATENT_HEALTH_ALLOWED_ROOTS` to change).")


def encoder_caption(device: str) -> str:
    """What the encoder tab runs, and where."""
    return ("TorchScript (`torch.jit.save`) or `torch.export` (`.pt2`) encoders run on one probe batch, on "
            f"{'the GPU' if device != 'cpu' else 'the CPU'} when available. Server paths only: these "
            "files carry code. For ordinary state_dict checkpoints use `sigreg embed` (see docs/compare.md).")


def load_error(label: str, exc: BaseException) -> str:
    """One line for a set that could not be read."""
    return f"{md(label)}: {md(exc, None)}"


def probe_error(name: str, exc: BaseException) -> str:
    """One line for a labels file refused for set ``name`` (the message's line breaks folded)."""
    return f"{md(name)}: {md(' '.join(str(exc).split()), None)}"


def rows_captions(sizes: dict, same_n: bool, seed: int, max_rows: Optional[int]) -> list:
    """How many rows each set will be scored on (``sizes``: set name -> rows), and whether the sidebar's row
    limit cut any set."""
    if same_n:
        out = [f"Every set will be scored on {min(sizes.values()):,} rows (the smallest set), subsampled without "
               f"replacement (seed {seed})."]
    else:
        out = ["All rows kept: " + ", ".join(f"{md(n)} {k:,}" for n, k in sizes.items())
               + (". Caveat: with different N, part of each delta is the change of N."
                  if len(set(sizes.values())) > 1 else ".")]
    if max_rows and any(k >= max_rows for k in sizes.values()):
        out.append(f"Sets larger than the sidebar's row limit ({max_rows:,}) were read as a random subset of "
                   "that many rows.")
    return out


def summary_caption(cmp) -> str:
    """Preset, slices, dimension and reference of a comparison."""
    return (f"Preset `{cmp.preset.name}` · {cmp.num_slices_scored} {cmp.family} slices (seed {cmp.seed}) shared "
            f"by every set · D = {cmp.directions.shape[0]} · reference **{md(cmp.reference, None)}**")


def quality_caption(measure_label: str, with_probes: bool, probe_rows: int) -> str:
    """What the quality table is ranked by and which measure predicted quality best (docs/quality.md)."""
    return (f"Ranked by {measure_label}. On our sweep of the demo world model, RankMe tracked the held-out "
            "probe R² best of the label-free measures (Spearman ρ +0.969; the health verdict's q +0.962; "
            "docs/quality.md): rank by it when there are no labels. α-ReQ: closest to 1 is best; LiDAR needs views. "
            + (f"Probes: held-out k-NN (k = 20) and linear probe on at most {probe_rows:,} rows per set, "
               "95 % Wilson intervals." if with_probes else ""))


def pair_caption(a: str, b: str, pt) -> str:
    """The paired slice test of set ``a`` against set ``b``."""
    return (f"{md(a, None)} − {md(b, None)}. Paired test over slices: {pt.fraction_lower:.0%} of slices lower for "
            f"{md(a, None)}; Wilcoxon p (adjusted for the slices' dependence) {fmt(pt.wilcoxon_p_adjusted, 3)}"
            + (f"; healthier: {md(pt.healthier, None)}" if pt.healthier else "; no significant difference") + ".")


def reference_lines(cmp) -> list:
    """``(kind, line)`` per set's SIGReg delta to the reference: ``success`` when the set is significantly
    healthier, ``error`` when significantly less healthy, ``info`` otherwise."""
    out = []
    for d in cmp.deltas:
        if d.metric != "sigreg":
            continue
        verdict = (f"significant: **{md(d.healthier, None)}** is healthier" if d.significant
                   else md(d.note, None) if d.note else "not significant (the interval contains 0)")
        line = (f"**{md(d.set, None)}**: ΔSIGReg = {fmt(d.value)} "
                f"({fmt(d.value / cmp.sets[cmp.reference].null_mean, 4)}× "
                f"the null mean), {int(round(d.level * 100))}% interval "
                f"{interval_cell(d.ci_low, d.ci_high, d.note)} — {verdict}")
        out.append(("success" if d.significant and d.healthier == d.set else
                    "error" if d.significant else "info", line))
    return out


def deltas_caption(cmp) -> str:
    """What the deltas table's intervals are."""
    return f"Deltas are set − {md(cmp.reference, None)}. Intervals: {cmp.n_boot} bootstrap resamples of the rows of " \
           + DELTAS_NOTE


def slice_line(cmp, j: int, how: str) -> str:
    """Every set's statistic on slice ``j`` (picked by ``how``)."""
    return f"**Slice {j}** ({how}): " + ", ".join(f"{md(n, None)} {fmt(cmp.sets[n].statistic[j])}"
                                                    for n in cmp.names)
