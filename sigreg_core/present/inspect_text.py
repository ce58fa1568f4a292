"""What the Inspect page says, as plain functions (no streamlit): captions, metric texts, file stems,
the slice a chart click names, the control a refusal names.

Split from ``pages/inspect.py`` (issue 23) so the page holds widgets and calls only, and so these
texts are tested without a browser.  Names from files are data: everything interpolated into
markdown goes through :func:`sigreg_core.util.text.md`.
"""
from __future__ import annotations

import math
from typing import Optional


__all__ = ["point_slice", "file_stem", "compute_time_metric", "summary_caption", "evidence_refs",
           "name_the_control", "cloud_caption", "loaded_record", "SCREEN_FAMILY"]

#: the screen a mode's evidence was found on -> the slice family that shows that slice on the page
SCREEN_FAMILY = {"random": "random", "axes": "coordinate", "principal": "principal"}

#: advice of the loader (written for the library and the CLI) -> the control on the page that does it
CONTROLS = {"drop_nonfinite=True (CLI --drop-nonfinite)": "the “Drop non-finite rows” box above"}


def point_slice(point: dict) -> Optional[int]:
    """Slice index of a clicked point: its customdata[0] (plotly may send customdata as a list or a dict)."""
    cd = point.get("customdata")
    if isinstance(cd, dict):
        cd = [cd[k] for k in sorted(cd, key=lambda k: int(k) if str(k).lstrip("-").isdigit() else 0)]
    if isinstance(cd, (list, tuple)) and cd:
        cd = cd[0]
    try:
        value = float(cd)
    except (TypeError, ValueError):
        return None
    return int(round(value)) if math.isfinite(value) else None


def file_stem(source: dict) -> str:
    """File-name stem of the set on the page (its file name without directory and extension), and its view."""
    stem = str(source.get("name", "embeddings")).replace("\\", "/").rsplit("/", 1)[-1].split(".")[0] or "embeddings"
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stem)[:60] or "embeddings"
    return stem + (f"_view{source['view']}" if source.get("view") is not None else "")


def compute_time_metric(origin: str, seconds: float) -> tuple:
    """(label, value, help) of the compute-time metric: a cache hit says it is one (not the original time
    as if it were now)."""
    what = "Statistic, null law, p-values, verdict and metrics."
    if origin == "computed":
        return ("Compute time", f"{seconds:.2f} s", what)
    where = "in the background, before you asked" if origin == "background" else "earlier"
    return ("Compute time", "cached", f"Read from the report cache: computed {where} in {seconds:.2f} s. {what}")


def summary_caption(s: dict) -> str:
    """The line under the verdict: shape, slices, preset, seed, device, null band, Monte Carlo draws."""
    views = f"{s['views']} views × " if s.get("views", 1) > 1 else ""
    return (f"{views}N = {s['n']:,} rows · D = {s['d']} dims · M = {s['m']} slices ({s['family']}) · "
            f"preset `{s['preset']}` · seed {s['seed']} · device {s['device']} · null band: "
            f"{s.get('null_quantiles_source') or 'n/a'}"
            + (f" · Monte Carlo null: {s['null_draws']} draws" if s.get("null_draws") else ""))


def evidence_refs(ev: dict) -> list:
    """(mode, family, index, label, help) for each mode whose evidence names a slice the page can show."""
    out = []
    for mode, e in ev.items():
        r = e.get("slice") if isinstance(e, dict) else None
        if not isinstance(r, dict) or r.get("screen") not in SCREEN_FAMILY:
            continue
        fam, index = SCREEN_FAMILY[r["screen"]], int(r["index"])
        name = str(mode).replace("_", " ")
        out.append((mode, fam, index, f"Show {name}: {r['screen']} slice {index}",
                    f"Opens slice {index} of the {fam} family, where the evidence was found."))
    return out


def name_the_control(message: str) -> str:
    """A refusal names the control on the page that fixes it (not a keyword argument or a CLI flag)."""
    for advice, control in CONTROLS.items():
        message = message.replace(advice, control)
    return message


def cloud_caption(view) -> str:
    """What the cloud shows, its fixed scale, and how many rows are highlighted against the base rate."""
    return (f"{view.note}. Fixed N(0, I) scale (the dashed circle holds 95 % of an N(0, I) cloud): a "
            f"collapse shows as a point or a line. Highlighted: {view.rule} — {view.outlier_rows.size:,} of "
            f"{view.n_total:,} rows, where an N(0, I) set of this size has about {view.expected_outliers:.2g} "
            f"by chance.")


def loaded_record(emb, desc: dict, load_key: tuple) -> dict:
    """What the page keeps of a loaded set (``insp_loaded``): the array, the digest the report cache is keyed
    to (the bytes scored and the load options, not the file as it is now), the source, its notices."""
    digest = f"{emb.data_sha256}|{emb.key}|{emb.array.shape}|{load_key[-1]}"
    return {
        "array": emb.array,
        "digest": digest,
        "source": {**desc, "format": emb.format, "sha256": emb.sha256, "original_shape": list(emb.original_shape)},
        "describe": emb.describe(),
        "notices": list(emb.notices),
        "original_rows": int(emb.original_shape[-2]) if len(emb.original_shape) >= 2 else emb.num_rows,
        "row_indices": emb.row_indices,  # the rows kept: labels of the file's rows are aligned with them
    }
