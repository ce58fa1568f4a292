"""Server paths relative to the project resolve against each allowed root (issue 23), and the extra
lookups never reveal what exists outside the roots."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sigreg_core.inputs.errors import EmbeddingLoadError
from sigreg_core.inputs.serverpaths import resolve_server_path

ROOT = Path(__file__).resolve().parents[1]


def _npy(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.zeros((4, 2), np.float32))
    return path


def test_project_relative_sample_path_with_the_default_roots(monkeypatch):
    monkeypatch.delenv("LATENT_HEALTH_ALLOWED_ROOTS", raising=False)
    want = (ROOT / "sample_data" / "healthy.safetensors").resolve()
    assert resolve_server_path("sample_data/healthy.safetensors") == want  # the project-relative spelling
    assert resolve_server_path("healthy.safetensors") == want  # the root-relative one still works


def test_path_naming_the_root_and_working_directory_lookups(tmp_path, monkeypatch):
    root = tmp_path / "proj" / "deep" / "data"
    x = _npy(root / "x.npy")
    _npy(root / "data" / "y.npy")  # a folder named like the root inside it: the root-relative reading wins
    assert resolve_server_path("data/x.npy", [root]) == x.resolve()
    assert resolve_server_path("data/y.npy", [root]) == (root / "data" / "y.npy").resolve()
    monkeypatch.chdir(tmp_path / "proj")
    assert resolve_server_path("deep/data/x.npy", [root]) == x.resolve()  # relative to the working directory


def test_extra_lookups_do_not_reveal_files_outside_the_roots(tmp_path, monkeypatch):
    root = tmp_path / "data"
    _npy(root / "x.npy")
    _npy(tmp_path / "secret.npy")
    _npy(tmp_path / "other" / "x.npy")
    monkeypatch.chdir(tmp_path)
    for typed in ("secret.npy", "other/x.npy"):
        with pytest.raises(EmbeddingLoadError, match="not found below the allowed directories") as info:
            resolve_server_path(typed, [root])
        assert str(tmp_path) not in str(info.value).split("(")[0]  # no resolved path of the outside file
