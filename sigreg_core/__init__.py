"""latent-health: is your self-supervised embedding healthy or collapsing?

``sigreg_core`` computes SIGReg, the sliced Epps–Pulley normality statistic of
LeJEPA (arXiv 2511.08544) and LeWorldModel (arXiv 2603.19312), exactly as the
public reference implementations do (see :mod:`sigreg_core.presets`), streaming
over rows, with a streaming gradient and torch.distributed support.  It never
imports Streamlit: use it from a training loop, a script or the ``sigreg`` CLI.
"""
from __future__ import annotations

import os as _os

# Two OpenMP pools share the CPU here (torch's and the numba kernel's). With the
# default spin-waiting, each small torch/numpy call after a kernel waits for spinning
# threads to yield: a 30-draw Monte Carlo null took 10.6 s with spinning and 4.1 s
# with PASSIVE on 2 cores. Only effective when sigreg_core is imported before torch
# initialises OpenMP; an explicit user setting always wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .presets import DEFAULT_PRESET, PRESETS, REFERENCE_PRESETS, Preset, get_preset
from .directions import sample_directions
from .device import device_report, resolve_device
from .statistic import SIGReg, epps_pulley, sigreg, statistic_from_sums
from .slices import SliceAccumulator, SliceStats, project, score_slices
from .nulllaw import bonferroni, cauchy_combination, slice_law, slice_pvalues
from .families import FAMILIES, make_directions
from .metrics import companion_metrics
from .diagnosis import MODES, diagnose
from .assess import VERDICTS, Assessment, assess, monte_carlo_null
from .loading import (
    EmbeddingLoadError,
    LoadedEmbeddings,
    list_keys,
    load_embeddings,
    load_server_path,
    resolve_server_path,
)
from .samples import Sample, list_samples, load_sample
from .compare import CompareError, Comparison, compare_sets
from .checkpoints import CheckpointError, embed_checkpoint, embed_state_dict
from .runs import RunReader, RunWriter

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "REFERENCE_PRESETS",
    "Preset",
    "get_preset",
    "sample_directions",
    "device_report",
    "resolve_device",
    "SIGReg",
    "epps_pulley",
    "sigreg",
    "statistic_from_sums",
    "SliceAccumulator",
    "SliceStats",
    "project",
    "score_slices",
    "bonferroni",
    "cauchy_combination",
    "slice_law",
    "slice_pvalues",
    "FAMILIES",
    "make_directions",
    "companion_metrics",
    "MODES",
    "diagnose",
    "VERDICTS",
    "Assessment",
    "assess",
    "monte_carlo_null",
    "EmbeddingLoadError",
    "LoadedEmbeddings",
    "list_keys",
    "load_embeddings",
    "load_server_path",
    "resolve_server_path",
    "Sample",
    "list_samples",
    "load_sample",
    "CompareError",
    "Comparison",
    "compare_sets",
    "CheckpointError",
    "embed_checkpoint",
    "embed_state_dict",
    "RunReader",
    "RunWriter",
]
