"""assess(): the public result, its consistency with the core, input safety, caching."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from sigreg_core.core import nulllaw as nl
from sigreg_core.assessment.assess import VERDICTS, Assessment, assess
from sigreg_core.assessment.diagnosis import MODES
from sigreg_core.core.presets import get_preset
from sigreg_core.core.statistic import sigreg


@pytest.fixture(scope="module")
def healthy():
    return np.random.default_rng(0).standard_normal((512, 16)).astype(np.float32)


def test_result_fields_and_json(healthy, tmp_path):
    calls = []
    a = assess(healthy, num_slices=128, seed=3, null_draws=8, cache_dir=tmp_path,
               progress=lambda f, m: calls.append((f, m)))
    assert isinstance(a, Assessment)
    assert a.verdict in VERDICTS and all(m in MODES for m in a.modes)
    # SIGReg equals the core's statistic on the same seeded directions
    ref = float(sigreg(torch.from_numpy(healthy), num_slices=128, seed=3))
    assert a.sigreg == pytest.approx(ref, rel=1e-5)
    assert a.null_mean == pytest.approx(get_preset("lejepa").null_mean(), rel=1e-12)
    assert a.sigreg_over_null == pytest.approx(a.sigreg / a.null_mean)
    cols = {"statistic", "p_value", "mean", "std", "skew", "kurtosis"}
    assert cols <= set(a.per_slice.columns) and len(a.per_slice) == 128
    # per-slice p-values are the exact law's
    p, _ = nl.slice_pvalues(a.per_slice["statistic"].to_numpy(), "lejepa", 512)
    np.testing.assert_allclose(a.per_slice["p_value"], p)
    assert a.null_quantiles[0.95] == pytest.approx(2.9456, abs=2e-3)
    assert a.config["n"] == 512 and a.config["d"] == 16 and a.config["num_slices"] == 128
    assert a.config["seed"] == 3 and a.config["family"] == "random" and a.config["preset"] == "lejepa"
    assert a.directions.shape == (16, 128)
    mc = a.p_values["monte_carlo"]
    assert mc["draws"] == 8 and mc["floor"] == pytest.approx(1 / 9) and mc["p_value"] >= 1 / 9
    text = json.dumps(a.to_dict(), allow_nan=False)
    assert '"verdict"' in text
    fr = [f for f, _ in calls]
    assert fr == sorted(fr) and fr[-1] == 1.0 and all(0 <= f <= 1 for f in fr)
    for k in ["rankme", "eigenvalues", "normalized_std", "vicreg_variance", "vicreg_covariance", "dim_mean", "dim_std"]:
        assert k in a.metrics


def test_monte_carlo_null_is_cached(healthy, tmp_path):
    a = assess(healthy, num_slices=64, null_draws=6, cache_dir=tmp_path)
    assert a.p_values["monte_carlo"]["source"] == "computed"
    files = list(tmp_path.glob("null-*.npz"))
    assert len(files) == 1
    b = assess(healthy, num_slices=64, null_draws=6, cache_dir=tmp_path)
    assert b.p_values["monte_carlo"]["source"] == "cache"
    assert b.p_values["monte_carlo"]["p_value"] == a.p_values["monte_carlo"]["p_value"]
    # a different configuration is a different entry
    assess(healthy, num_slices=64, seed=1, null_draws=6, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("null-*.npz"))) == 2


def test_env_cache_dir(healthy, tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_HEALTH_CACHE", str(tmp_path / "c"))
    assess(healthy, num_slices=32, null_draws=3)
    assert len(list((tmp_path / "c").glob("null-*.npz"))) == 1


def test_families_label_their_pvalues(healthy, tmp_path):
    c = assess(healthy, family="coordinate", null_draws=0)
    assert len(c.per_slice) == 16 and "exact" in c.p_values["per_slice"]["method"]
    p = assess(healthy, family="principal", null_draws=10, cache_dir=tmp_path)
    assert "Monte Carlo per principal index" in p.p_values["per_slice"]["method"]
    assert p.per_slice["p_value"].min() >= 1 / 11
    w = assess(healthy, family="worst", num_slices=4, null_draws=0)
    assert "descriptive" in w.p_values["per_slice"]["method"]
    m = assess(healthy, preset="modulus", num_slices=32, null_draws=5, cache_dir=tmp_path)
    assert "Monte Carlo pooled" in m.p_values["per_slice"]["method"]
    assert m.config["screen_preset"] == "lejepa"


def test_views_are_scored_separately_and_averaged(healthy):
    v = np.stack([healthy, healthy[::-1].copy() * 1.0])
    a = assess(v, num_slices=64, null_draws=0)
    assert len(a.views) == 2
    assert a.sigreg == pytest.approx(np.mean([x.sigreg for x in a.views]))
    assert a.config["views"] == 2
    json.dumps(a.to_dict(), allow_nan=False)


def test_unscaled_preset_uses_n_scaled_law(healthy):
    a = assess(healthy, preset="gist", num_slices=64, null_draws=0)
    p, _ = nl.slice_pvalues(a.per_slice["statistic"].to_numpy(), "gist", 512)
    np.testing.assert_allclose(a.per_slice["p_value"], p)
    assert a.null_mean == pytest.approx(get_preset("gist").null_mean(512))


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros(5), "shape"),
        (np.zeros((2, 3, 4, 5)), "shape"),
        (np.array([["a", "b"]]), "real numbers"),
        (np.zeros((1, 4)), "at least 2 rows"),
        ("not an array", "real numbers|torch tensor"),
    ],
)
def test_bad_input_is_one_line_error(bad, match):
    with pytest.raises(ValueError, match=match) as e:
        assess(bad, null_draws=0)
    assert "\n" not in str(e.value)


def test_nan_and_bad_arguments(healthy):
    z = healthy.copy()
    z[7, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite.*row 7"):
        assess(z, null_draws=0)
    with pytest.raises(ValueError, match="unknown slice family"):
        assess(healthy, family="diagonal")
    with pytest.raises(ValueError, match="unknown preset"):
        assess(healthy, preset="nope")
    with pytest.raises(ValueError, match="num_slices"):
        assess(healthy, num_slices=0)


def test_collapse_is_detected_fast():
    z = np.zeros((300, 8), np.float32)
    a = assess(z, num_slices=64, null_draws=0)
    assert a.verdict == "collapsed" and "full_collapse" in a.modes
    assert "full_collapse" in a.mode_evidence and "0.25" in a.mode_evidence["full_collapse"]["evidence"]
    assert a.p_value < 1e-6 and math.isfinite(a.log10_p_value)


def _ep_direct(x, preset):
    n = x.shape[0]
    out = np.zeros(x.shape[1])
    for t, c in zip(preset.nodes, preset.weights):
        out += c * ((np.cos(t * x).mean(0) - np.exp(-t * t / 2)) ** 2 + np.sin(t * x).mean(0) ** 2)
    return n * out


def test_screens_against_direct_computation():
    rng = np.random.default_rng(11)
    z = (rng.standard_normal((700, 6)) @ rng.standard_normal((6, 6)) + 0.3).astype(np.float64)
    a = assess(z, num_slices=32, null_draws=0)
    p = get_preset("lejepa")
    # principal shape screen: EP of each standardised principal projection (float64 oracle)
    cov = np.cov(z, rowvar=False)
    w, v = np.linalg.eigh(cov)
    v = v[:, np.argsort(w)[::-1]]
    x = (z - z.mean(0)) @ v
    x = x / x.std(0)
    np.testing.assert_allclose(a.screens["principal"]["statistic"], _ep_direct(x, p), rtol=1e-4)
    # coordinate screen: EP of each raw coordinate
    np.testing.assert_allclose(a.screens["axes"]["statistic"], _ep_direct(z, p), rtol=1e-4)
    # the verdict p-value is min(1, 2 min(weighted Cauchy of the three screens with p capped at 0.99,
    # Bonferroni over every slice)), written out here from the per-slice p-values (an independent oracle)
    lps = [a.screens[k]["log_p"] for k in ("random", "axes", "principal")]
    w8 = np.concatenate([np.full(len(l), 1 / len(l)) for l in lps])
    ps = np.minimum(np.exp(np.concatenate(lps)), 0.99)
    t = float(np.sum(w8 / w8.sum() / np.tan(ps * np.pi)))  # tan((1/2 - p) pi) = cot(p pi), exact for tiny p
    log_cauchy = math.log(1 / (math.pi * t)) if t > 1e12 else math.log(0.5 - math.atan(t) / math.pi)
    log_bonf = min(0.0, float(np.min(np.concatenate(lps))) + math.log(ps.size))
    want = min(0.0, min(log_cauchy, log_bonf) + math.log(2))
    assert a.p_values["verdict"]["uncalibrated_cauchy_p_value"] == pytest.approx(math.exp(want), rel=1e-6)


@pytest.mark.parametrize("n", [48, 128])
def test_small_healthy_batches_report_no_mode(n):
    # sample kurtosis / skewness of small batches have long tails: no false shape modes
    for seed in range(3):
        z = np.random.default_rng(100 + seed).standard_normal((n, 24)).astype(np.float32)
        a = assess(z, num_slices=512, null_draws=0)
        if a.p_value >= 1e-3:
            assert a.modes == [] and a.verdict == "healthy", (n, seed, a.modes)


def test_diagnose_names_the_triggering_number():
    from sigreg_core.assessment.diagnosis import diagnose
    from sigreg_core.assessment.metrics import companion_metrics

    rng = np.random.default_rng(12)
    z = rng.standard_normal((4000, 10))
    z[:, 3] += 2.0
    found = diagnose(companion_metrics(z))
    assert [f["mode"] for f in found] == ["shift"]
    f = found[0]
    # the shift is measured in units of the spread (RMS per-dimension std), so it is scale-free
    rms = np.sqrt(np.mean(z.var(0)))
    assert f["value"] == pytest.approx(np.linalg.norm(z.mean(0)) / rms, rel=1e-9)
    assert f["threshold"] == pytest.approx(0.25) and "dim 3" in f["evidence"]
    # shape modes need significance
    sk, ku = np.zeros(10), np.full(10, 5.0)
    m = companion_metrics(rng.standard_normal((4000, 10)))
    assert [f["mode"] for f in diagnose(m, [("axes", sk, ku)], significant=True)] == ["heavy_tails"]
    assert diagnose(m, [("axes", sk, ku)], significant=False) == []
    ku2 = np.full(10, -2.0)
    assert [f["mode"] for f in diagnose(m, [("axes", sk, ku2)])] == ["multimodal"]
