"""Training runs: write them from a training loop, read them back for the Monitor page.

The per-step summary and the Monte Carlo null band of SIGReg (:mod:`.summary`), the
crash-safe ``RunWriter`` (:mod:`.writer`; the folder's layout, lock and atomic writes in
:mod:`.runfiles`; the quality measures it logs per step in :mod:`.step_quality`), the ``RunReader`` of a
run folder (:mod:`.reader`) with where runs are (:mod:`.locate`: discovery, confinement, step names),
the index rows as a frame (:mod:`.frames`) and the folder-run summary cache
(:mod:`.folder_cache`), the hostile-index rules (:mod:`.safeindex`), the demo JEPA world model that produces the shipped runs
(:mod:`.demo`); the Lightning callback lives in :mod:`sigreg_core.integrations.lightning`
(:mod:`.lightning` re-exports it).
"""
from sigreg_core.runs.summary import SummaryConfig, sigreg_null_band, sigreg_null_draws, summarize
from sigreg_core.runs.writer import (
    CACHE_DIR_ENV,
    INDEX_NAME,
    SERIES_COLUMNS,
    SNAPSHOT_DIR,
    SNAPSHOT_KEY,
    RunWriter,
)
from sigreg_core.runs.reader import (
    RunReader,
    default_cache_dir,
    find_runs,
    is_run_dir,
    resolve_run_dir,
    run_version,
    step_from_name,
)

__all__ = [
    "SummaryConfig", "summarize", "sigreg_null_draws", "sigreg_null_band",
    "RunWriter", "INDEX_NAME", "SNAPSHOT_DIR", "SNAPSHOT_KEY", "SERIES_COLUMNS", "CACHE_DIR_ENV",
    "RunReader", "default_cache_dir", "find_runs", "is_run_dir", "resolve_run_dir", "run_version", "step_from_name",
]
