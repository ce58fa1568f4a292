"""Choosing and aligning the sets of a comparison: what the Compare page does between its widgets.

A loaded set becomes one record (float32 rows, a content digest that keys every cache,
the loader's notices, and the file's row count plus the rows kept, so that labels given
for the file's rows are aligned with the rows scored: issue 22).  Sets of the same name
get ``#2``, ``#3``; steps of a run are the steps that kept a snapshot, chosen by a list
or range (:func:`sigreg_core.util.steps.parse_steps`); labels
files are matched to sets (one file for every set, or one per set in order); and one
comparison is keyed by the sets' digests and every setting that changes its result.
No Streamlit here (the page calls these).
"""
from __future__ import annotations

import hashlib
from typing import Callable, Optional

import numpy as np

from sigreg_core.compare.comparison import COMPARABLE_FAMILIES, CompareError
from sigreg_core.compare.notices import probe_error
from sigreg_core.inputs.checkpoints import CheckpointError
from sigreg_core.inputs.loading import EmbeddingLoadError

__all__ = ["COMPARE_ERRORS", "LOAD_ERRORS", "loaded_set", "unique_names", "nonblank_lines", "kept_steps",
           "step_placeholder", "add_steps", "labels_guess", "labels_widget_key", "trim_oldest",
           "comparable_family", "comparison_key", "probe_quality", "probe_sets", "run_choices", "open_run", "compare_with_settings"]


#: what reading one set may raise; each is one line on the page and the other sets go on
LOAD_ERRORS = (EmbeddingLoadError, CheckpointError, KeyError, ValueError, FileNotFoundError)
#: what a comparison may raise on bad input: one line on the page
COMPARE_ERRORS = (CompareError, ValueError, RuntimeError)


def loaded_set(value) -> dict:
    """The record kept for one read set: ``array`` (C-contiguous float32, (N, D) or (V, N, D)), ``digest``
    (the first 16 hex digits of the SHA-256 of its bytes), ``notices``, ``original_rows`` (rows of the file,
    before ``max_rows``) and ``row_indices`` (the file's rows kept, None for all)."""
    arr = value.array if hasattr(value, "array") else value
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    shape = tuple(getattr(value, "original_shape", ()) or ())
    return {"array": arr, "digest": hashlib.sha256(arr.tobytes()).hexdigest()[:16],
            "notices": list(getattr(value, "notices", [])),
            "original_rows": int(shape[-2]) if len(shape) >= 2 else int(arr.shape[-2]),
            "row_indices": getattr(value, "row_indices", None)}


def unique_names(entries: list) -> list:
    """``(name, got, source)`` entries with repeated names made unique: the second ``a`` is ``a#2``."""
    seen, out = {}, []
    for name, got, src in entries:
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f"{name}#{seen[name]}", got, src))
    return out


def nonblank_lines(text: Optional[str]) -> list:
    """The stripped, non-empty lines of a text area (one path per line)."""
    return [ln.strip() for ln in (text or "").splitlines() if ln.strip()]


def kept_steps(timeseries: dict) -> list:
    """The steps of a run's time series that kept a snapshot (an empty, "None" or "nan" snapshot is none)."""
    return [int(s) for s, snap in zip(timeseries["step"], timeseries["snapshot"])
            if snap is not None and str(snap) not in ("", "None", "nan")]


def step_placeholder(steps: list) -> str:
    """An example for the step-spec box from the run's own steps: a list and a range of about four."""
    return f"e.g. {steps[0]}, {steps[-1]}  or  {steps[0]}-{steps[-1]}/{max(1, len(steps) // 4)}"


def add_steps(spec: str, chosen: list, steps: list) -> tuple[list, str]:
    """(``chosen`` plus the kept steps ``spec`` names, without repeats; a note naming what was not understood)."""
    from sigreg_core.util.steps import parse_steps

    got, bad = parse_steps(spec or "", steps)
    return list(dict.fromkeys(list(chosen) + got)), (f"Not understood: {', '.join(bad)}" if bad else "")


def labels_guess(file_ids: list, index: int, n_sets: int) -> str:
    """The labels file first offered to set ``index``: the only file for every set, the index-th when there is
    one file per set, else ``"none"``."""
    if len(file_ids) == 1:
        return file_ids[0]
    return file_ids[index] if len(file_ids) == n_sets else "none"


def labels_widget_key(name: str) -> str:
    """A widget key per set name that stays short and safe whatever the name holds."""
    return f"cmp_labels_for_{hashlib.sha1(str(name).encode()).hexdigest()[:12]}"


def trim_oldest(cache: dict, keep: int) -> dict:
    """Drop the oldest entries (insertion order) until at most ``keep`` are left; returns ``cache``."""
    while len(cache) > keep:
        cache.pop(next(iter(cache)))
    return cache


def comparable_family(family: str) -> tuple[str, Optional[str]]:
    """(the slice family the comparison uses, a warning when the sidebar's family had to be replaced):
    families that draw directions from a set's own data would give each set its own slices."""
    if family in COMPARABLE_FAMILIES:
        return family, None
    return "random", (f"The sidebar's slice family `{family}` picks directions from each set's own data, so "
                      "sets would not share slices; this page compares on random slices.")


def comparison_key(entries: list, reference: str, settings_key: tuple, family: str, same_n: bool,
                   n_boot: int) -> tuple:
    """What one comparison depends on: every set's name and digest, the reference and the settings."""
    return (tuple((n, got["digest"]) for n, got, _ in entries), reference, settings_key, family, same_n, n_boot)


def probe_quality(got: dict, data: bytes, name: str, progress: Optional[Callable] = None) -> dict:
    """:func:`sigreg_core.assessment.probes.label_quality` of one set with the labels file ``data``: the labels
    of the file's rows aligned with the rows the loader kept; a bad file raises ``ValueError`` /
    ``EmbeddingLoadError`` (one line on the page)."""
    from sigreg_core.assessment.probes import INTERACTIVE_ROWS, label_quality
    from sigreg_core.inputs.labels import align_to_rows, load_labels
    from sigreg_core.inputs.limits import max_upload_bytes

    y = align_to_rows(load_labels(data, name=name, max_bytes=max_upload_bytes()), got["original_rows"],
                      got["row_indices"])
    return label_quality(got["array"], y, max_rows=INTERACTIVE_ROWS, seed=0, progress=progress)


def probe_sets(entries: list, files: dict, memo: dict, *, progress: Optional[Callable] = None,
               keep: int = 32) -> tuple[dict, list]:
    """({set: :func:`probe_quality`} for the sets given a labels file in ``files`` (set name -> uploaded file:
    ``file_id``, ``name``, ``getvalue()``), one markdown-safe error line per refused labels file).  Results are
    memoised in ``memo`` per (set digest, file id), the ``keep`` newest kept; ``progress(name)`` gives the
    progress callback of one set's probes."""
    out, errors = {}, []
    for name, got, _src in entries:
        f = files.get(name)
        if f is None:
            continue
        mk = (got["digest"], f.file_id)
        if mk not in memo:
            try:
                memo[mk] = probe_quality(got, f.getvalue(), f.name, progress=progress(name) if progress else None)
            except (EmbeddingLoadError, ValueError) as exc:  # bad labels (InputError is a ValueError): one line
                errors.append(probe_error(name, exc))
                continue
            trim_oldest(memo, keep)
        out[name] = memo[mk]
    return out, errors


def run_choices(roots: list) -> dict:
    """{run folder: its name} for the monitored runs below ``roots`` (the names the Monitor page shows)."""
    from sigreg_core.runs import find_runs
    from sigreg_core.runs.discovery import run_name

    return {str(r): run_name(r, roots) for r in find_runs(roots)}


def open_run(run: str) -> tuple:
    """(the run's :class:`sigreg_core.runs.RunReader`, its steps that kept a snapshot); a run that cannot be read
    raises ``OSError`` / ``ValueError``."""
    from sigreg_core.runs import RunReader

    reader = RunReader(run)
    return reader, kept_steps(reader.timeseries())


def compare_with_settings(sets: dict, reference: str, settings, family: str, same_n: bool, n_boot: int,
                          progress: Optional[Callable] = None):
    """:func:`sigreg_core.compare.comparison.compare_sets` with the sidebar's settings (slices, seed, preset,
    device, null draws)."""
    from sigreg_core.compare import comparison  # looked up at call time: tests count the real computations

    null_draws = settings.resolved_null_draws() if hasattr(settings, "resolved_null_draws") else None
    return comparison.compare_sets(sets, reference=reference, num_slices=settings.num_slices, seed=settings.seed,
                                   preset=settings.preset, family=family, same_n=same_n, n_boot=n_boot,
                                   device=settings.device, progress=progress, null_draws=null_draws)
