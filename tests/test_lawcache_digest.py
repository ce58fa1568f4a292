"""Every cached null-law table is checked against the digest written with it (issue 24).

A table altered after it was written, even one that is still well-formed (finite, q increasing,
log P decreasing), must be rebuilt, never used; so must a table whose digest was made by other
code (another recipe).  The oracle is a fresh build in this process (bit-identical by design).
"""
from __future__ import annotations

import numpy as np
import pytest

from sigreg_core.core import lawcache
from sigreg_core.core import nulllaw as nl
from sigreg_core.core.presets import get_preset


@pytest.fixture
def law_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_HEALTH_CACHE", str(tmp_path / "cache"))
    nl._cached_law.cache_clear()
    yield tmp_path / "cache"
    nl._cached_law.cache_clear()


def _fields(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: np.array(f[k]) for k in f.files}


def _rewrite(path, fields):
    with open(path, "wb") as fh:
        np.savez(fh, **fields)


def _same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_written_table_carries_the_digest_of_its_bytes_and_recipe(law_cache):
    p = get_preset("lejepa-paper")
    law = nl.slice_law(p)
    path = lawcache.law_cache_path(p.nodes, p.weights, False, recipe=nl.law_recipe())
    f = _fields(path)
    want = lawcache.table_digest(p.nodes, p.weights, False, law.eigenvalues, law.q_table, law.logsf_table,
                                 nl.law_recipe())
    assert str(f["digest"]) == want and len(want) == 64
    # the digest follows every input: one bit of the table, the recipe, the standardisation
    q2 = law.q_table.copy()
    q2[5] = np.nextafter(q2[5], np.inf)
    assert lawcache.table_digest(p.nodes, p.weights, False, law.eigenvalues, q2, law.logsf_table,
                                 nl.law_recipe()) != want
    assert lawcache.table_digest(p.nodes, p.weights, False, law.eigenvalues, law.q_table, law.logsf_table,
                                 b"other code") != want
    assert lawcache.table_digest(p.nodes, p.weights, True, law.eigenvalues, law.q_table, law.logsf_table,
                                 nl.law_recipe()) != want


@pytest.mark.parametrize("alteration", ["scaled-logsf", "one-q-moved", "digest-of-other-code", "no-digest"])
def test_altered_but_well_formed_table_is_rebuilt_never_used(law_cache, alteration):
    p = get_preset("lejepa")
    fresh = nl._build_law(nl.law_eigenvalues(p.nodes, p.weights), False)
    nl.slice_law(p)  # writes the entry
    path = lawcache.law_cache_path(p.nodes, p.weights, False, recipe=nl.law_recipe())
    f = _fields(path)
    if alteration == "scaled-logsf":  # every p-value halved in log: still finite and decreasing
        f["logsf_table"] = f["logsf_table"] * 0.5
    elif alteration == "one-q-moved":
        f["q_table"][10] = 0.5 * (f["q_table"][9] + f["q_table"][10])  # still strictly increasing
    elif alteration == "digest-of-other-code":
        f["digest"] = np.str_(lawcache.table_digest(p.nodes, p.weights, False, f["eigenvalues"], f["q_table"],
                                                    f["logsf_table"], b"an older algorithm"))
    else:
        del f["digest"]
    assert lawcache._well_formed(f["eigenvalues"], f["q_table"], f["logsf_table"])  # the shape checks pass ...
    _rewrite(path, f)
    assert lawcache.load_law_table(p.nodes, p.weights, False, recipe=nl.law_recipe()) is None  # ... the digest not
    nl._cached_law.cache_clear()
    law = nl.slice_law(p)
    for field in ("eigenvalues", "q_table", "logsf_table"):
        assert _same_bits(getattr(law, field), getattr(fresh, field)), field
    np.testing.assert_allclose(law.ppf([0.95, 0.99, 0.999]), [2.9456, 4.5866, 7.0458], atol=2e-3)  # SIGREG.md §2
    again = lawcache.load_law_table(p.nodes, p.weights, False, recipe=nl.law_recipe())  # overwritten by a good one
    assert again is not None and all(_same_bits(a, b) for a, b in zip(again, (fresh.eigenvalues, fresh.q_table,
                                                                              fresh.logsf_table)))


def test_untouched_table_is_read_back(law_cache, monkeypatch):
    p = get_preset("gist")
    built = nl.slice_law(p)
    nl._cached_law.cache_clear()

    def no_build(*_a, **_k):
        raise AssertionError("rebuilt although the entry on disk was intact")

    monkeypatch.setattr(nl, "_build_law", no_build)
    loaded = nl.slice_law(p)
    assert loaded is not built and _same_bits(loaded.logsf_table, built.logsf_table)
