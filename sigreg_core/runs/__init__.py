"""Training runs: write them from a training loop, read them back for the Monitor page.

The crash-safe ``RunWriter`` and the ``RunReader`` of a run folder (:mod:`.store`),
the demo JEPA world model that produces the shipped runs (:mod:`.demo`), and the
Lightning callback (:mod:`.lightning`).
"""
from sigreg_core.runs.store import (  # noqa: F401  (the public names of the old sigreg_core.runs)
    RunReader,
    RunWriter,
    SummaryConfig,
    find_runs,
    is_run_dir,
    resolve_run_dir,
    run_version,
    step_from_name,
    summarize,
)
