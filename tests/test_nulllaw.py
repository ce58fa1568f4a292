"""The exact per-slice null law and the p-value combinations, against independent oracles."""
from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from sigreg_core.core import lawcache
from sigreg_core.core import nulllaw as nl
from sigreg_core.core.presets import PRESETS, Preset, get_preset

ECF_PRESETS = ["lejepa", "lejepa-paper", "lejepa-legacy", "gist"]


def ep_direct(x: np.ndarray, preset: Preset) -> np.ndarray:
    """EP of each column of x (N, R), float64, written from the definition (an oracle)."""
    n = x.shape[0]
    out = np.zeros(x.shape[1])
    for t, c in zip(preset.nodes, preset.weights):
        cm = np.cos(t * x).mean(0)
        sm = np.sin(t * x).mean(0)
        out += c * ((cm - math.exp(-t * t / 2)) ** 2 + sm**2)
    return out * (n if preset.scale_by_n else 1.0)


def test_reference_quantile_095_gives_p_005():
    law = nl.slice_law("lejepa")
    assert abs(float(law.sf(2.9456)) - 0.05) <= 0.002
    # the three reference quantiles of SIGREG.md §2
    np.testing.assert_allclose(law.ppf([0.95, 0.99, 0.999]), [2.9456, 4.5866, 7.0458], atol=2e-3)


def test_direct_imhof_matches_reference_quantiles():
    lam = nl.slice_law("lejepa").eigenvalues
    np.testing.assert_allclose(nl.imhof_sf([2.9456, 4.5866, 7.0458], lam), [0.05, 0.01, 0.001], rtol=2e-3)


@pytest.mark.parametrize("name", ECF_PRESETS)
def test_eigenvalues_sum_to_exact_null_mean(name):
    p = get_preset(name)
    lam = nl.law_eigenvalues(p.nodes, p.weights)
    expect = float(np.sum(p.weights * (1 - np.exp(-p.nodes**2))))  # E[EP] per SIGREG.md §2
    assert abs(lam.sum() - expect) < 1e-10 * expect
    assert np.all(lam > 0)


def test_closed_form_covariance_matches_gauss_hermite():
    t = PRESETS["lejepa-paper"].nodes
    cc, ss = nl._closed_form_blocks(t)
    cc2, ss2 = nl.influence_covariances(t, standardized=False)
    np.testing.assert_allclose(cc, cc2, atol=1e-12)
    np.testing.assert_allclose(ss, ss2, atol=1e-12)


def test_law_matches_monte_carlo_of_weighted_chi_squares():
    law = nl.slice_law("lejepa")
    lam = law.eigenvalues
    rng = np.random.default_rng(0)
    q = rng.chisquare(1, size=(200_000, lam.size)) @ lam
    for v in [0.5, 1.0, 2.0, 4.0, 7.0]:
        emp = (q > v).mean()
        se = math.sqrt(emp * (1 - emp) / q.size)
        assert abs(emp - float(law.sf(v))) < 5 * se + 1e-5


def test_interpolated_table_matches_direct_imhof():
    law = nl.slice_law("lejepa")
    qs = np.array([0.1, 0.3, 0.9, 1.7, 3.3, 5.5, 9.1, 13.0])
    direct = nl.imhof_sf(qs, law.eigenvalues)
    np.testing.assert_allclose(law.sf(qs), direct, rtol=1e-3)
    # past the Imhof table (P < 1e-6) the joined saddlepoint keeps within 2 per cent (Imhof itself is accurate to ~1e-11 absolute)
    np.testing.assert_allclose(law.sf([17.0, 20.0]), nl.imhof_sf([17.0, 20.0], law.eigenvalues), rtol=2e-2)


def test_tail_is_saddlepoint_and_has_exact_slope():
    law = nl.slice_law("lejepa")
    qs = np.array([40.0, 100.0, 300.0, 700.0])
    ls = law.logsf(qs)
    sp = nl.saddlepoint_logsf(qs, law.eigenvalues)
    np.testing.assert_allclose(ls, sp, atol=0.1)
    # far beyond the table: the largest eigenvalue sets the decay
    far = law.logsf(np.array([5000.0, 5100.0]))
    slope = (far[1] - far[0]) / 100.0
    assert abs(slope + 1 / (2 * law.lambda_max)) < 1e-3
    assert np.all(np.isfinite(far)) and far[0] < math.log(1e-300)
    # monotone decreasing everywhere
    grid = np.linspace(0, 6000, 5001)
    assert np.all(np.diff(law.logsf(grid)) <= 0)


def test_quadrature_statistic_on_gaussian_samples_follows_the_law():
    """Monte Carlo of the actual statistic (direct float64 formula) on N(0, 1) slices."""
    p = get_preset("lejepa")
    law = nl.slice_law(p)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((256, 6000))
    q = ep_direct(x, p)
    pv = law.sf(q)
    for alpha in (0.05, 0.01):
        rate = (pv <= alpha).mean()
        se = math.sqrt(alpha * (1 - alpha) / q.size)
        assert abs(rate - alpha) < 4 * se + 0.004, (alpha, rate)
    # the p-values are uniform (KS against U(0, 1))
    assert stats.kstest(pv, "uniform").pvalue > 1e-3


def test_unscaled_preset_is_multiplied_by_n():
    p = get_preset("gist")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 3000))
    s = ep_direct(x, p)  # unscaled units
    pv, lpv = nl.slice_pvalues(s, p, n=300)
    direct = nl.slice_law(p).sf(s * 300)
    np.testing.assert_allclose(pv, np.maximum(direct, nl.P_FLOOR))
    assert abs((pv <= 0.05).mean() - 0.05) < 0.02


def test_standardized_law_matches_monte_carlo():
    """Per-slice standardised statistic: delta-method law against simulation."""
    p = get_preset("lejepa")
    law = nl.slice_law(p, standardized=True)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((400, 5000))
    x = (x - x.mean(0)) / x.std(0)
    q = ep_direct(x, p)
    assert abs(q.mean() - law.mean) < 0.03 * law.mean + 0.01
    pv = law.sf(q)
    for alpha in (0.05, 0.01):
        rate = (pv <= alpha).mean()
        assert abs(rate - alpha) < 4 * math.sqrt(alpha * (1 - alpha) / q.size) + 0.004, (alpha, rate)
    # and the unstandardised law would be badly wrong for it
    assert (nl.slice_law(p).sf(q) <= 0.05).mean() < 0.005


def test_modulus_has_no_exact_law():
    assert not nl.has_exact_law("modulus")
    with pytest.raises(nl.NoExactLaw):
        nl.slice_law("modulus")


def test_custom_grid_law_is_cached_and_consistent():
    p = Preset.custom(t_max=4.0, num_nodes=21)
    law1 = nl.slice_law(p)
    law2 = nl.slice_law_for_grid(p.nodes, p.weights)
    assert law1 is law2
    assert abs(law1.mean - p.null_mean()) < 1e-10


def test_many_pvalues_are_fast():
    import time

    law = nl.slice_law("lejepa")
    q = np.random.default_rng(0).uniform(0, 2000, size=100_000)
    t0 = time.perf_counter()
    lp = law.logsf(q)
    assert time.perf_counter() - t0 < 1.0
    assert np.all(np.isfinite(lp))


# ------------------------------------------------------------ combinations
def test_cauchy_combination_matches_formula():
    p = np.array([0.3, 0.02, 0.7, 0.001])
    w = np.array([1, 2, 3, 4.0])
    t = np.sum(w / w.sum() * np.tan((0.5 - p) * np.pi))
    expect = 0.5 - np.arctan(t) / np.pi
    got, lgot = nl.cauchy_combination(p, weights=w)
    assert abs(got - expect) < 1e-12 and abs(lgot - math.log(expect)) < 1e-9


def test_cauchy_of_identical_pvalues_returns_them():
    for v in (0.9, 0.05, 1e-5, 1e-40):
        got, _ = nl.cauchy_combination([v] * 7)
        assert abs(got - v) <= 1e-6 * v


def test_cauchy_in_log_space_below_double_range():
    # one p of e^-1000 among 100 slices: T ~ (1/100) / (pi p), p_comb ~ 100 p
    lp = np.full(100, math.log(0.5))
    lp[0] = -1000.0
    _, lc = nl.cauchy_combination(log_p=lp)
    assert abs(lc - (-1000.0 + math.log(100))) < 1e-6


def test_cauchy_is_calibrated_for_independent_uniforms():
    rng = np.random.default_rng(4)
    u = rng.uniform(size=(20000, 10))
    pc = np.array([nl.cauchy_combination(row)[0] for row in u])
    assert abs((pc <= 0.05).mean() - 0.05) < 0.006


def test_bonferroni_and_empirical():
    p, lp = nl.bonferroni([0.01, 0.5, 0.2])
    assert abs(p - 0.03) < 1e-12
    assert nl.bonferroni([0.6, 0.9])[0] == 1.0
    null = np.arange(1, 100.0)  # 99 draws
    assert nl.empirical_pvalue(1000.0, null) == pytest.approx(1 / 100)
    assert nl.empirical_pvalue(50.0, null) == pytest.approx((1 + 50) / 100)
    assert nl.pvalue_floor(99) == pytest.approx(0.01)


# ------------------------------------------------------- on-disk law cache
class _Bomb:
    """Unpickling this touches a file: proves a cache file is never unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


@pytest.fixture
def law_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_HEALTH_CACHE", str(tmp_path / "cache"))
    nl._cached_law.cache_clear()
    yield tmp_path / "cache"
    nl._cached_law.cache_clear()


def _same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _no_build(*_a, **_k):
    raise AssertionError("the table was rebuilt instead of read from the disk cache")


def test_law_table_from_disk_is_bit_identical_to_a_fresh_build(law_cache, monkeypatch):
    p = get_preset("lejepa")
    for standardized in (False, True):
        fresh = nl._build_law(nl.law_eigenvalues(p.nodes, p.weights, standardized=standardized), standardized)
        built = nl.slice_law_for_grid(p.nodes, p.weights, standardized=standardized)  # builds and writes
        path = lawcache.law_cache_path(p.nodes, p.weights, standardized, recipe=nl.law_recipe())
        assert path.is_file() and path.parent.parent == law_cache
        nl._cached_law.cache_clear()
        with monkeypatch.context() as m:
            m.setattr(nl, "_build_law", _no_build)
            m.setattr(nl, "law_eigenvalues", _no_build)
            loaded = nl.slice_law_for_grid(p.nodes, p.weights, standardized=standardized)
        assert loaded is not built and loaded.standardized is standardized
        for law in (built, loaded):
            for field in ("eigenvalues", "q_table", "logsf_table"):
                assert _same_bits(getattr(law, field), getattr(fresh, field)), field
        q = np.linspace(0.0, 80.0, 257)
        assert np.array_equal(loaded.logsf(q), fresh.logsf(q))
    # the reference quantiles still hold for the table read back (SIGREG.md §2)
    np.testing.assert_allclose(nl.slice_law("lejepa").ppf([0.95, 0.99, 0.999]), [2.9456, 4.5866, 7.0458],
                               atol=2e-3)


def test_law_cache_key_separates_grids_and_standardisation(tmp_path):
    p, q = get_preset("lejepa"), get_preset("lejepa-paper")
    paths = {lawcache.law_cache_path(p.nodes, p.weights, False, tmp_path),
             lawcache.law_cache_path(p.nodes, p.weights, True, tmp_path),
             lawcache.law_cache_path(q.nodes, q.weights, False, tmp_path),
             lawcache.law_cache_path(p.nodes, p.weights * (1 + 1e-15), False, tmp_path),
             lawcache.law_cache_path(p.nodes, p.weights, False, tmp_path, recipe=b"another algorithm")}
    assert len(paths) == 5


def test_law_recipe_is_the_same_in_every_process_and_follows_the_code(monkeypatch):
    code = "from sigreg_core.core import nulllaw as nl; import hashlib; print(hashlib.sha256(nl.law_recipe()).hexdigest())"
    root = Path(__file__).resolve().parents[1]
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True,
                           env={**os.environ, "PYTHONPATH": str(root)}).stdout.strip() for _ in range(2)}
    assert runs == {hashlib.sha256(nl.law_recipe()).hexdigest()}
    before = nl.law_recipe()
    monkeypatch.setattr(nl, "_BODY_SF", 1e-8)  # a changed constant of the build ...
    nl.law_recipe.cache_clear()
    try:
        assert nl.law_recipe() != before  # ... is a different cache key
    finally:
        monkeypatch.undo()
        nl.law_recipe.cache_clear()
    assert nl.law_recipe() == before


def _write_corrupt(path: Path, kind: str, p, sentinel: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    good = nl._build_law(nl.law_eigenvalues(p.nodes, p.weights), False)
    fields = dict(eigenvalues=good.eigenvalues, q_table=good.q_table, logsf_table=good.logsf_table,
                  nodes=np.asarray(p.nodes, np.float64), weights=np.asarray(p.weights, np.float64),
                  standardized=np.bool_(False), version=np.int64(lawcache.LAW_CACHE_VERSION))
    if kind == "garbage":
        path.write_bytes(b"not a zip file at all\n")
        return
    if kind == "pickle":
        fields["q_table"] = np.array([_Bomb(sentinel)], dtype=object)
    elif kind == "foreign-grid":
        fields["nodes"] = fields["nodes"] + 0.5
    elif kind == "old-version":
        fields["version"] = np.int64(lawcache.LAW_CACHE_VERSION - 1)
    elif kind == "nan-table":
        fields["logsf_table"] = np.where(np.arange(good.logsf_table.size) == 7, np.nan, good.logsf_table)
    elif kind == "shuffled-table":
        fields["logsf_table"] = good.logsf_table[::-1].copy()
    with open(path, "wb") as fh:
        np.savez(fh, **fields)
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("kind", ["garbage", "truncated", "pickle", "foreign-grid", "old-version", "nan-table",
                                  "shuffled-table"])
def test_corrupt_or_foreign_law_cache_is_ignored_and_rebuilt(law_cache, kind):
    p = get_preset("lejepa")
    path = lawcache.law_cache_path(p.nodes, p.weights, False, recipe=nl.law_recipe())
    sentinel = law_cache.parent / "unpickled"
    _write_corrupt(path, kind, p, sentinel)
    assert lawcache.load_law_table(p.nodes, p.weights, False, recipe=nl.law_recipe()) is None
    law = nl.slice_law("lejepa")
    assert not sentinel.exists()
    assert abs(float(law.sf(2.9456)) - 0.05) <= 0.002
    # the bad entry was replaced by a good one, bit-identical to what this process built
    again = lawcache.load_law_table(p.nodes, p.weights, False, recipe=nl.law_recipe())
    assert again is not None
    assert all(_same_bits(a, b) for a, b in zip(again, (law.eigenvalues, law.q_table, law.logsf_table)))
    assert [f.name for f in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_unwritable_law_cache_only_costs_the_rebuild(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("LATENT_HEALTH_CACHE", str(blocker))  # cache_root() / "nulllaw" cannot be created
    nl._cached_law.cache_clear()
    try:
        law = nl.slice_law("lejepa")
        assert abs(float(law.sf(2.9456)) - 0.05) <= 0.002
        p = get_preset("lejepa")
        assert lawcache.save_law_table(p.nodes, p.weights, False, law.eigenvalues, law.q_table,
                                       law.logsf_table) is None
    finally:
        nl._cached_law.cache_clear()
