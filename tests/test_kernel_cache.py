"""The compiled-kernel cache runs no code it did not write itself (issue 24).

Generated kernel sources are compiled from memory (a planted file under the kernel's
name is overwritten, never executed); numba's cache (index pickles, object code) lives
only in a private folder checked for owner and mode; a folder that fails the check is
refused with one line and the kernels still run, compiled in memory.  The end-to-end
cases run in a child process (a fresh kernel table, numba state and warning filter).
"""
from __future__ import annotations

import json
import os
import pickle
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, sys, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import numpy as np, torch
    from sigreg_core.core import ecf, ecf_kernels, draw_kernel
    from sigreg_core.core.presets import PRESETS
    nodes = PRESETS["lejepa"].nodes
    x = torch.randn(300, 40, generator=torch.Generator().manual_seed(3))
    c32, s32 = ecf.ecf_sums(x, nodes)
    c64, s64 = ecf.ecf_sums(x.double(), nodes)
    kern = ecf_kernels.specialised_kernel(len(nodes), True)
cache = getattr(kern, "_cache", None)
print(json.dumps({
    "err": float(max((c32 - c64).abs().max(), (s32 - s64).abs().max())) / x.shape[0],  # per value
    "specialised": kern is not None,
    "cache_path": getattr(cache, "cache_path", None),
    "draw_cache_path": getattr(draw_kernel._normalise_serial._cache, "cache_path", None),
    "hits": int(sum(kern.stats.cache_hits.values())) if kern is not None else -1,
    "warnings": [str(w.message) for w in caught if "kernel cache" in str(w.message)],
}))
"""


def _child(cache_root: Path, **env) -> dict:
    e = dict(os.environ, PYTHONPATH=str(ROOT), LATENT_HEALTH_CACHE=str(cache_root), **env)
    res = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=e, cwd=str(ROOT),
                         timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def _expected(folder: Path) -> tuple[Path, str]:
    """Path and text of the K = 17, t_0 = 0 sum kernel the child builds."""
    from sigreg_core.core import ecf_kernels

    name = ecf_kernels.generated_name(17, True, "sums")
    return folder / f"{name}.py", ecf_kernels._generated_source(17, True, "sums")


def _numba_index_path(py_file: Path, src: str) -> Path:
    """Where numba would look for the index pickle of ``kernel`` in ``py_file`` (our locator's layout)."""
    from numba.core.caching import _CacheLocator

    lineno = src.splitlines().index("@njit(parallel=True, fastmath=_FM, nogil=True)") + 1
    sub = _CacheLocator.get_suitable_cache_subpath(str(py_file))
    ver = f"py{sys.version_info[0]}{sys.version_info[1]}{getattr(sys, 'abiflags', '')}"
    return py_file.parent / "numba" / sub / f"{py_file.stem}.kernel-{lineno}.{ver}.nbi"


class _Payload:
    """Unpickling this creates a folder: the proof that a pickle was loaded."""

    def __init__(self, mark: str):
        self.mark = mark

    def __reduce__(self):
        return (os.mkdir, (self.mark,))


def _plant(folder: Path, mark: Path) -> tuple[Path, str]:
    """A generated-kernel file and a numba index pickle, both running code when loaded."""
    py, src = _expected(folder)
    py.write_text(f"import os\nos.mkdir({str(mark)!r})\ndef kernel(*a):\n    raise SystemExit(7)\n")
    idx = _numba_index_path(py, src)
    idx.parent.mkdir(parents=True, exist_ok=True)
    idx.write_bytes(pickle.dumps(_Payload(str(mark) + "-pickle")))
    return py, src


@pytest.mark.slow
def test_default_cache_is_private_used_and_keeps_numba_out_of_shared_places(tmp_path):
    root = tmp_path / "cache"
    shared = tmp_path / "numba-shared"
    first = _child(root, NUMBA_CACHE_DIR=str(shared))
    folder = root / "kernels"
    st = os.lstat(folder)
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o700
    assert first["specialised"] and first["err"] < 2e-6 and first["warnings"] == []
    py, src = _expected(folder)
    assert py.read_text() == src
    for key in ("cache_path", "draw_cache_path"):
        assert Path(first[key]).is_relative_to(folder / "numba"), first[key]
    assert _numba_index_path(py, src).exists(), "numba wrote no index where the planting tests put theirs"
    assert not shared.exists() or not any(shared.rglob("*"))  # $NUMBA_CACHE_DIR is not used
    second = _child(root, NUMBA_CACHE_DIR=str(shared))
    assert second["hits"] > 0 and second["err"] == first["err"]  # the disk cache is used


@pytest.mark.slow
def test_planted_generated_file_is_not_run_and_is_replaced(tmp_path):
    root = tmp_path / "cache"
    folder = root / "kernels"
    folder.mkdir(parents=True, mode=0o700)
    mark = tmp_path / "ran"
    py, src = _expected(folder)
    py.write_text(f"import os\nos.mkdir({str(mark)!r})\ndef kernel(*a):\n    raise SystemExit(7)\n")
    out = _child(root)
    assert not mark.exists(), "the planted kernel file ran"
    assert out["specialised"] and out["err"] < 2e-6 and out["warnings"] == []
    assert py.read_text() == src  # replaced by the source generated by the package


@pytest.mark.slow
def test_group_writable_cache_is_refused_in_one_line_and_nothing_in_it_runs(tmp_path):
    root = tmp_path / "cache"
    folder = root / "kernels"
    folder.mkdir(parents=True)
    mark = tmp_path / "ran"
    py, _ = _plant(folder, mark)
    os.chmod(folder, 0o777)
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    out = _child(root)
    assert not mark.exists() and not Path(str(mark) + "-pickle").exists(), "code from the refused cache ran"
    assert out["specialised"] and out["err"] < 2e-6  # compiled in memory: same results
    assert out["cache_path"] is None and out["draw_cache_path"] is None
    assert len(out["warnings"]) == 1
    msg = out["warnings"][0]
    assert "\n" not in msg and "refused" in msg and "writable by group or others" in msg and str(folder) in msg
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before  # nothing written there


def _refusal(monkeypatch, root: Path) -> "str | None":
    from sigreg_core.core import kernel_cache

    monkeypatch.setenv("LATENT_HEALTH_CACHE", str(root))
    monkeypatch.setattr(kernel_cache, "_STATE", {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = kernel_cache.private_kernel_dir()
    msgs = [str(w.message) for w in caught if issubclass(w.category, kernel_cache.KernelCacheWarning)]
    if got is not None:
        assert msgs == []
        return None
    assert len(msgs) == 1 and "\n" not in msgs[0] and "compiling the kernels in memory" in msgs[0]
    return msgs[0]


def test_foreign_owned_cache_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "kernels"
    folder.mkdir(mode=0o700)
    if os.getuid() == 0:  # a real foreign owner
        os.chown(folder, 54321, 54321)
    else:  # as seen by another user
        real = os.getuid()
        monkeypatch.setattr(os, "getuid", lambda: real + 1)
    msg = _refusal(monkeypatch, tmp_path)
    assert msg is not None and "owned by uid" in msg


def test_symlinked_or_uncreatable_cache_is_refused_and_the_private_one_accepted(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "kernels").symlink_to(real)
    assert "symbolic link" in _refusal(monkeypatch, tmp_path / "a")
    (tmp_path / "file").write_text("x")
    assert "cannot be created" in _refusal(monkeypatch, tmp_path / "file" / "sub")
    (tmp_path / "b" / "kernels").mkdir(parents=True, mode=0o750)  # group may read, not write
    os.chmod(tmp_path / "b" / "kernels", 0o750)
    assert _refusal(monkeypatch, tmp_path / "b") is None
    assert _refusal(monkeypatch, tmp_path / "new") is None  # created owner-only
    assert stat.S_IMODE(os.lstat(tmp_path / "new" / "kernels").st_mode) == 0o700
    os.chmod(tmp_path / "b" / "kernels", 0o770)
    assert "writable by group" in _refusal(monkeypatch, tmp_path / "b")


def test_no_shared_tmp_fallback_and_no_import_from_disk():
    src = (ROOT / "sigreg_core" / "core" / "ecf_kernels.py").read_text()
    assert "gettempdir" not in src and "latent-health-kernels" not in src
    assert "spec_from_file_location" not in src and "exec_module" not in src


def test_generated_name_changes_with_the_kernel_module(monkeypatch):
    from sigreg_core.core import ecf_kernels

    a = ecf_kernels.generated_name(17, True, "sums")
    monkeypatch.setattr(ecf_kernels, "_SELF_DIGEST", "0" * 64)
    assert ecf_kernels.generated_name(17, True, "sums") != a
    assert np.all([ecf_kernels.generated_name(k, z, w) != a for k, z, w in [(16, True, "sums"), (17, False, "sums"),
                                                                            (17, True, "moments")]])
