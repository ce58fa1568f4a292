"""latent-health: is your self-supervised embedding healthy or collapsing?

``sigreg_core`` computes SIGReg, the sliced Epps–Pulley normality statistic of
LeJEPA (arXiv 2511.08544) and LeWorldModel (arXiv 2603.19312), exactly as the
public reference implementations do (see :mod:`sigreg_core.core.presets`), streaming
over rows, with a streaming gradient and torch.distributed support.  It never
imports Streamlit: use it from a training loop, a script or the ``sigreg`` CLI.

The package is layered; each folder owns one concern and imports only the ones
above it in this list:

* :mod:`sigreg_core.core` — the statistic: presets, directions, the ECF kernel, the
  differentiable loss, the exact null law of one slice (what a training loop needs);
* :mod:`sigreg_core.assessment` — per-slice scores, slice families, companion
  metrics, diagnosis and the verdict;
* :mod:`sigreg_core.inputs` — safe loading of every supported file format, the
  shipped samples, embedding a checkpoint;
* :mod:`sigreg_core.runs` — training runs: the crash-safe writer, the reader, the
  demo run, the Lightning callback;
* :mod:`sigreg_core.compare` — several sets on the same slices and the same N;
* :mod:`sigreg_core.present` — figures and the report model (plotly, no Streamlit);
* :mod:`sigreg_core.util` — the cache directory and JSON-safe conversion.

Top-level names are resolved lazily (PEP 562), so ``from sigreg_core import SIGReg``
imports the statistic core and nothing else.
"""
from __future__ import annotations

import importlib as _importlib
import os as _os
import sys as _sys

# torch's ops and the numba kernel run on OpenMP threads (here one libgomp pool).  With
# the default spin-waiting, idle threads keep spinning after every parallel region and
# take the cores that the next step (or another process) needs: on a loaded 2-core
# machine a training step (256 x 512) took 487 ms with spinning and 68 ms with PASSIVE
# (benchmarks/bench_loss_cells.py --import-order).  libgomp reads the policy once, when
# torch loads it, and has no run-time setter: so this only takes effect when
# sigreg_core is imported before torch (or OMP_WAIT_POLICY is set in the environment);
# an explicit user setting always wins.  ``device_report()`` says which case holds.
_OMP_POLICY_LATE = "torch" in _sys.modules and "OMP_WAIT_POLICY" not in _os.environ
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "sigreg_core.core.presets": ("DEFAULT_PRESET", "PRESETS", "REFERENCE_PRESETS", "Preset", "get_preset"),
    "sigreg_core.core.directions": ("sample_directions",),
    "sigreg_core.core.device": ("device_report", "resolve_device"),
    "sigreg_core.core.statistic": ("epps_pulley", "sigreg", "statistic_from_sums"),
    "sigreg_core.core.sigreg_module": ("SIGReg",),
    "sigreg_core.core.nulllaw": ("bonferroni", "cauchy_combination", "slice_law", "slice_pvalues"),
    "sigreg_core.assessment.slices": ("SliceAccumulator", "SliceStats", "project", "score_slices"),
    "sigreg_core.assessment.families": ("FAMILIES", "make_directions"),
    "sigreg_core.assessment.metrics": ("companion_metrics",),
    "sigreg_core.assessment.diagnosis": ("MODES", "diagnose"),
    "sigreg_core.assessment.assess": ("VERDICTS", "Assessment", "assess", "monte_carlo_null"),
    "sigreg_core.inputs.loading": ("EmbeddingLoadError", "LoadedEmbeddings", "list_keys", "load_embeddings",
                                   "load_server_path", "resolve_server_path"),
    "sigreg_core.inputs.samples": ("Sample", "list_samples", "load_sample"),
    "sigreg_core.compare": ("CompareError", "Comparison", "compare_sets"),
    "sigreg_core.inputs.checkpoints": ("CheckpointError", "embed_checkpoint", "embed_state_dict"),
    "sigreg_core.runs": ("RunReader", "RunWriter"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [name for names in _EXPORTS.values() for name in names]


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'sigreg_core' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this hook
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
