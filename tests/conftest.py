"""Shared pytest configuration."""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Keep the CPU thread count predictable on the shared 2-core machines.
os.environ.setdefault("OMP_NUM_THREADS", "2")
# Kernels, Monte Carlo nulls and folder scores are cached inside the checkout (ignored by git),
# not in the user's home; subprocesses (CLI, Streamlit servers) inherit it.
os.environ.setdefault("LATENT_HEALTH_CACHE", str(ROOT / ".cache" / "latent-health-tests"))
# No background prefetch of other presets' reports in tests (sigreg_core/present/prefetch.py): tests count
# report computations; the prefetch has its own tests, which turn it on explicitly.
os.environ.setdefault("LATENT_HEALTH_PREFETCH", "0")
# as sigreg_core/__init__.py does, before any test module imports torch
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
