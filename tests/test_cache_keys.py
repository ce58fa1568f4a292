"""Caches that cannot lie (issue 24): the Monte Carlo null on disk is keyed to the code that made
it and verified against a keyed digest written with it.

The audit turned "severe" sets into "healthy" with p = 1.0 by editing a cached table in place
(well-formed, so it was served).  Oracle: a fresh computation with the cache switched off
(``cache_dir=False``): whatever the cache serves must equal it bit for bit, and an altered or
foreign entry must be recomputed (``source == "computed"``), never served.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from sigreg_core.assessment import montecarlo as mc
from sigreg_core.core.presets import get_preset

KW = dict(family="random", num_slices=16, seed=0, preset=get_preset("lejepa"), draws=12, device="cpu")


def _null(cache_dir):
    return mc.monte_carlo_null(64, 6, cache_dir=cache_dir, **KW)


@pytest.fixture(scope="module")
def fresh():
    return _null(False)


def _entry(tmp_path):
    files = sorted(tmp_path.glob("null-*.npz"))
    assert len(files) == 1, files
    return files[0]


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as f:
        fields = {k: f[k] for k in f.files}
    fields.update(changes)
    with open(path, "wb") as fh:
        np.savez(fh, **fields)


def test_a_clean_entry_is_served_bit_for_bit(tmp_path, fresh):
    first = _null(tmp_path)
    assert first.source == "computed"
    again = _null(tmp_path)
    assert again.source == "cache"
    for k in ("sigreg", "verdict_log_p", "per_slice", "screen_log_p"):
        np.testing.assert_array_equal(getattr(again, k), getattr(fresh, k))
    assert (tmp_path / "cache.key").stat().st_mode & 0o777 == 0o600


def test_an_altered_but_well_formed_table_is_recomputed_not_served(tmp_path, fresh):
    _null(tmp_path)
    path = _entry(tmp_path)
    with np.load(path, allow_pickle=False) as f:
        sig = f["sigreg"].copy()
    _rewrite(path, sigreg=sig * 1e3)  # a "null" under which any data looks healthy; digest kept as written
    got = _null(tmp_path)
    assert got.source == "computed"
    np.testing.assert_array_equal(got.sigreg, fresh.sigreg)
    assert _null(tmp_path).source == "cache"  # the recomputation overwrote the altered entry


def test_an_entry_signed_with_another_key_is_not_served(tmp_path, fresh):
    _null(tmp_path)
    path = _entry(tmp_path)
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in mc._FIELDS}
    arrays["sigreg"] = np.zeros_like(arrays["sigreg"])
    forged = mc._digest(os.urandom(32), json.loads(json.dumps(fresh.config)), arrays)  # attacker's own key
    _rewrite(path, sigreg=arrays["sigreg"], digest=np.frombuffer(forged.encode(), np.uint8))
    assert _null(tmp_path).source == "computed"


def test_a_different_code_fingerprint_is_not_served(tmp_path, monkeypatch, fresh):
    _null(tmp_path)
    assert _null(tmp_path).source == "cache"
    monkeypatch.setattr(mc, "_CODE_FINGERPRINT", "0" * 64)  # as after an edit of the scorer or a new release
    got = _null(tmp_path)
    assert got.source == "computed"
    np.testing.assert_array_equal(got.sigreg, fresh.sigreg)
    assert len(list(tmp_path.glob("null-*.npz"))) == 2  # old and new code keep separate entries
    # the old code's file renamed to the new code's name still carries the old fingerprint inside
    new = [p for p in tmp_path.glob("null-*.npz") if p.name.endswith("-000000000000.npz")][0]
    old = [p for p in tmp_path.glob("null-*.npz") if p != new][0]
    os.replace(old, new)
    assert _null(tmp_path).source == "computed"


def test_other_settings_are_not_served_from_a_renamed_entry(tmp_path):
    a = mc.monte_carlo_null(64, 6, cache_dir=tmp_path, **KW)
    b_kw = dict(KW, num_slices=8)
    b = mc.monte_carlo_null(64, 6, cache_dir=tmp_path / "b", **b_kw)
    target = sorted((tmp_path / "b").glob("null-*.npz"))[0]
    os.replace(a.path, target)  # the 16-slice table under the 8-slice name
    (tmp_path / "b" / "cache.key").write_bytes((tmp_path / "cache.key").read_bytes())
    got = mc.monte_carlo_null(64, 6, cache_dir=tmp_path / "b", **b_kw)
    assert got.source == "computed" and got.per_slice.shape[1] == 8
    np.testing.assert_array_equal(got.sigreg, b.sigreg)


def test_a_key_file_readable_by_others_or_planted_disables_the_cache(tmp_path):
    _null(tmp_path)
    key = tmp_path / "cache.key"
    key.chmod(0o644)  # readable by others: anyone could sign a table
    assert _null(tmp_path).source == "computed"
    key.chmod(0o600)
    assert _null(tmp_path).source == "cache"
    key.unlink()
    key.symlink_to(tmp_path / "elsewhere")  # a link planted in place of the key: never followed
    (tmp_path / "elsewhere").write_bytes(os.urandom(32))
    assert _null(tmp_path).source == "computed"
