"""Probes, LiDAR and alpha-ReQ against independent oracles (issue 22)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sigreg_core.assessment import alpha_req as AQ
from sigreg_core.assessment import lidar as L
from sigreg_core.assessment import probes as P


def _clusters(n, d, c, spread, seed):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((c, d))
    y = rng.integers(0, c, n)
    z = centres[y] * spread + rng.standard_normal((n, d))
    return z.astype(np.float32), y


# ----------------------------------------------------------------------------- k-NN
def _knn_brute_force(train, ytr, test, k=20, t=0.07):
    """float64, one row at a time, votes in a dict; ties go to the smallest class (as argmax)."""
    out = []
    a = train.astype(np.float64)
    a = a / np.sqrt((a * a).sum(1))[:, None]
    for row in test.astype(np.float64):
        q = row / math.sqrt(float(row @ row))
        sims = a @ q
        order = sorted(range(len(sims)), key=lambda i: -sims[i])[:k]
        votes = {}
        for i in order:
            votes[int(ytr[i])] = votes.get(int(ytr[i]), 0.0) + math.exp(sims[i] / t)
        best = max(votes.values())
        out.append(min(c for c, v in votes.items() if v == best))
    return np.array(out)


def test_knn_matches_a_brute_force_float64_loop():
    z, y = _clusters(700, 24, 7, 0.6, seed=1)
    tr, te = P.holdout_split(len(y), 0.2, seed=3)
    pred = P.knn_predict(z[tr], y[tr], z[te], 7, block=37)  # blocks that do not divide the rows
    oracle = _knn_brute_force(z[tr], y[tr], z[te])
    assert np.array_equal(pred, oracle)
    r = P.knn_accuracy(z, y, seed=3)
    assert r.accuracy == pytest.approx(np.mean(oracle == y[te]), abs=1e-15)
    assert r.n_test == te.size and r.n_train == tr.size and r.classes == 7
    assert 0.3 < r.accuracy < 0.99  # neither trivial nor hopeless: the comparison means something


def test_knn_matches_scikit_learn():
    sk = pytest.importorskip("sklearn.neighbors")
    z, y = _clusters(900, 16, 5, 0.5, seed=2)
    tr, te = P.holdout_split(len(y), 0.25, seed=0)
    clf = sk.KNeighborsClassifier(n_neighbors=20, metric="cosine", algorithm="brute",
                                  weights=lambda dist: np.exp((1.0 - dist) / 0.07))
    clf.fit(z[tr].astype(np.float64), y[tr])
    ours = P.knn_predict(z[tr], y[tr], z[te], 5)
    assert np.mean(ours == clf.predict(z[te].astype(np.float64))) >= 0.995


def test_knn_separable_classes_score_one_and_random_labels_score_chance():
    rng = np.random.default_rng(4)
    c = 10
    y = np.repeat(np.arange(c), 60)
    z = np.eye(32)[y] * 5 + 0.01 * rng.standard_normal((len(y), 32))
    assert P.knn_accuracy(z, y).accuracy == 1.0
    noise = rng.standard_normal((4000, 32)).astype(np.float32)
    r = P.knn_accuracy(noise, rng.integers(0, c, 4000))
    assert r.low < 1 / c < r.high + 0.03


# ----------------------------------------------------------------------------- linear probe
def test_logistic_fit_equals_scikit_learn_optimum():
    lm = pytest.importorskip("sklearn.linear_model")
    z, y = _clusters(600, 10, 4, 0.4, seed=5)
    x = (z - z.mean(0)) / z.std(0)
    l2 = 1e-2
    w, b = P.fit_logistic(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(y), 4, l2=l2, max_iter=500,
                          tol=1e-10)
    ref = lm.LogisticRegression(C=1.0 / (len(y) * l2), tol=1e-12, max_iter=10_000).fit(x.astype(np.float64), y)
    np.testing.assert_allclose(w.numpy().T, ref.coef_, rtol=1e-4, atol=1e-5)
    bc = b.numpy() - b.numpy().mean()
    np.testing.assert_allclose(bc, ref.intercept_ - ref.intercept_.mean(), rtol=1e-4, atol=1e-5)


def test_linear_probe_predictions_agree_with_scikit_learn():
    lm = pytest.importorskip("sklearn.linear_model")
    z, y = _clusters(1500, 20, 6, 0.35, seed=6)
    r = P.linear_probe_accuracy(z, y, l2=1e-3, max_iter=300, seed=1)
    tr, te = P.holdout_split(len(y), 0.2, seed=1)
    mu, sd = z[tr].astype(np.float64).mean(0), z[tr].astype(np.float64).std(0)
    ref = lm.LogisticRegression(C=1.0 / (tr.size * 1e-3), tol=1e-10, max_iter=10_000)
    ref.fit((z[tr] - mu) / sd, y[tr])
    acc = float(np.mean(ref.predict((z[te] - mu) / sd) == y[te]))
    assert abs(r.accuracy - acc) <= 2.0 / te.size
    assert 0.4 < r.accuracy < 0.995
    assert r.low <= r.accuracy <= r.high


def test_linear_probe_closed_form_separable_case():
    # two classes on either side of a hyperplane with a wide margin: the probe separates them exactly
    rng = np.random.default_rng(7)
    x = rng.standard_normal((800, 6))
    y = (x[:, 0] > 0).astype(np.int64)
    x[:, 0] += np.where(y == 1, 3.0, -3.0)
    r = P.linear_probe_accuracy(x, y)
    assert r.accuracy == 1.0 and r.high == 1.0 and r.low < 1.0


def test_probes_are_deterministic():
    z, y = _clusters(500, 8, 3, 0.3, seed=8)
    a, b = P.linear_probe_accuracy(z, y, seed=2), P.linear_probe_accuracy(z, y, seed=2)
    assert a.accuracy == b.accuracy
    assert P.knn_accuracy(z, y, seed=2).accuracy == P.knn_accuracy(z, y, seed=2).accuracy


# ----------------------------------------------------------------------------- intervals and labels
@pytest.mark.parametrize("correct,total", [(0, 10), (3, 10), (10, 10), (512, 1000), (999, 1000)])
def test_wilson_interval_endpoints_solve_the_score_equation(correct, total):
    lo, hi = P.wilson_interval(correct, total)
    ph, z = correct / total, P.Z95
    for p in (lo, hi):  # (p_hat - p)^2 = z^2 p (1 - p) / n at both ends
        assert (ph - p) ** 2 == pytest.approx(z * z * p * (1 - p) / total, abs=1e-12)
    assert lo <= ph <= hi


@pytest.mark.parametrize("labels,msg", [
    (np.zeros(9), "9 values but the embeddings have 10 rows"),
    (np.array([0, 1, np.nan, 1, 0, 1, 0, 1, 0, 1]), "NaN"),
    (np.array([0, 1, 0.5, 1, 0, 1, 0, 1, 0, 1]), "whole class numbers"),
    (np.zeros(10, dtype=int), "at least 2 classes"),
    (np.array(list("abababab ab"[:10])), "integer class numbers"),
])
def test_bad_labels_are_one_line_value_errors(labels, msg):
    with pytest.raises(ValueError, match=msg) as err:
        P.check_labels(labels, 10)
    assert "\n" not in str(err.value)


def test_too_many_classes_refused():
    with pytest.raises(ValueError, match="over the limit of 10,000"):
        P.check_labels(np.arange(10_001), 10_001)


# ----------------------------------------------------------------------------- LiDAR
def _lidar_oracle(z, delta=1e-4, eps=1e-8):
    """float64 explicit sums and scipy's generalised symmetric eigenproblem Sb v = lambda (Sw + delta I) v."""
    import scipy.linalg as sla

    z = np.asarray(z, dtype=np.float64)
    v, n, d = z.shape
    means = np.stack([z[:, i].mean(0) for i in range(n)])
    grand = means.mean(0)
    sb = np.zeros((d, d))
    sw = np.zeros((d, d))
    for i in range(n):
        e = means[i] - grand
        sb += np.outer(e, e)
        for j in range(v):
            f = z[j, i] - means[i]
            sw += np.outer(f, f)
    sb /= n - 1
    sw = sw / (n * (v - 1)) + delta * np.eye(d)
    lam = np.clip(sla.eigh(sb, sw, eigvals_only=True), 0, None)
    p = lam / lam.sum() + eps
    return float(np.exp(-(p * np.log(p)).sum()))


@pytest.mark.parametrize("shape,scale", [((2, 40, 6), 1.0), ((5, 30, 12), 0.3), ((3, 8, 20), 1e-2)])
def test_lidar_matches_the_generalised_eigen_oracle(shape, scale):
    rng = np.random.default_rng(sum(shape))
    v, n, d = shape
    base = rng.standard_normal((1, n, d)) * np.linspace(0.2, 2.0, d)
    z = base + scale * rng.standard_normal((v, n, d))
    assert L.lidar(z) == pytest.approx(_lidar_oracle(z), rel=1e-9)
    assert L.lidar(torch.from_numpy(z.astype(np.float32))) == pytest.approx(_lidar_oracle(z), rel=1e-4)


def test_lidar_paper_behaviour_collapse_is_low_and_distinct_samples_high():
    rng = np.random.default_rng(3)
    v, n, d = 4, 300, 16
    good = rng.standard_normal((1, n, d)) + 0.1 * rng.standard_normal((v, n, d))  # views agree, samples differ
    collapsed = np.zeros((v, n, d))                                                # everything on one axis
    collapsed[..., 0] = good[..., 0]
    low_rank = good.copy()
    low_rank[..., 2:] = 0.1 * rng.standard_normal((v, n, d - 2))                  # 2 informative directions
    lg, lc, lr = L.lidar(good), L.lidar(collapsed), L.lidar(low_rank)
    assert lg > 15.0 and lr < 4.0 and lc < 1.01
    assert 1.0 <= lr <= min(n - 1, d) + 1e-6


def test_lidar_reference_matches_gaussian_views():
    v, n, d = 3, 200, 12
    rng = np.random.default_rng(0)
    sims = np.array([L.lidar(rng.standard_normal((v, n, d))) for _ in range(30)])
    ref = L.lidar_reference(v, n, d, seed=4)
    assert sims.min() - 4 * sims.std() <= ref <= sims.max() + 4 * sims.std()
    assert abs(ref - sims.mean()) < 6 * sims.std() + 0.02 * sims.mean()


def test_lidar_needs_views():
    with pytest.raises(ValueError, match="at least 2 views"):
        L.lidar(np.zeros((1, 10, 3)))
    assert L.views_metrics(np.zeros((10, 3))) == {}


# ----------------------------------------------------------------------------- alpha-ReQ
@pytest.mark.parametrize("alpha,d", [(1.0, 256), (0.6, 128), (2.3, 512), (1.4, 12)])
def test_alpha_req_recovers_a_planted_power_law_exactly(alpha, d):
    lam = 3.7 * np.arange(1, d + 1, dtype=np.float64) ** (-alpha)
    out = AQ.alpha_req(np.random.default_rng(0).permutation(lam))
    assert out["alpha"] == pytest.approx(alpha, abs=1e-12)
    assert (out["k_lo"], out["k_hi"]) == ((6, min(100, d)) if d >= 15 else (1, d))


def test_alpha_req_through_the_companion_metrics_of_a_set_with_that_spectrum():
    from sigreg_core.assessment.metrics import companion_metrics

    n, d, alpha = 400, 150, 1.25
    rng = np.random.default_rng(1)
    # rows whose sample covariance has exactly the eigenvalues k^-alpha: Z = sqrt(n-1) U diag(sqrt lam) V^T,
    # U orthonormal and orthogonal to the all-ones vector (so the columns are centred)
    u = np.linalg.qr(np.column_stack([np.ones(n), rng.standard_normal((n, d))]))[0][:, 1:]
    vt = np.linalg.qr(rng.standard_normal((d, d)))[0]
    lam = np.arange(1, d + 1, dtype=np.float64) ** (-alpha)
    z = math.sqrt(n - 1) * (u * np.sqrt(lam)) @ vt.T + 5.0
    m = companion_metrics(z)
    assert m["alpha_req"] == pytest.approx(alpha, abs=1e-6)
    assert (m["alpha_req_k_lo"], m["alpha_req_k_hi"]) == (6, 100)


def test_alpha_req_reference_matches_gaussian_sets():
    from sigreg_core.assessment.metrics import companion_metrics

    n, d = 300, 64
    rng = np.random.default_rng(2)
    sims = np.array([companion_metrics(rng.standard_normal((n, d)))["alpha_req"] for _ in range(30)])
    from sigreg_core.present.reading import healthy_references

    for ref in (AQ.alpha_req_reference(n, d, seed=9)["alpha"], healthy_references(n, d, seed=9)["alpha_req"]):
        assert sims.min() - 4 * sims.std() <= ref <= sims.max() + 4 * sims.std()
        assert abs(ref - sims.mean()) < 6 * sims.std() + 0.02


def test_assessment_of_views_carries_lidar_and_alpha_req():
    from sigreg_core.assessment.assess import assess

    rng = np.random.default_rng(5)
    z = (rng.standard_normal((1, 256, 8)) + 0.2 * rng.standard_normal((2, 256, 8))).astype(np.float32)
    a = assess(z, num_slices=64, null_draws=0, cache_dir=False)
    assert a.metrics["lidar"] == pytest.approx(_lidar_oracle(z), rel=1e-4)
    assert np.isfinite(a.metrics["alpha_req"])
    single = assess(z[0], num_slices=64, null_draws=0, cache_dir=False)
    assert "lidar" not in single.metrics and np.isfinite(single.metrics["alpha_req"])


def test_probe_iteration_budget_drops_only_for_very_large_problems():
    assert P.default_iterations(52_429, 512, 1000) == 30   # ~1.1e11 flops per evaluation
    assert P.default_iterations(40_000, 768, 100) == 100   # ~1.2e10
    r = P.linear_probe_accuracy(*_clusters(300, 6, 3, 0.5, seed=9))
    assert "<= 100 iterations" in r.method


def test_written_out_gradient_matches_autograd_in_float64():
    """The probe's loss and gradient (no autograd, one reused buffer) against torch autograd of
    cross_entropy + (l2 / 2) ||W||^2 in float64, at a random point."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(300, 7, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (300,), generator=g)
    w0 = torch.randn(7, 5, generator=g, dtype=torch.float64)
    b0 = torch.randn(5, generator=g, dtype=torch.float64)
    loss, gw, gb = P.loss_and_gradient(x, y, w0, b0, 0.03)
    w, b = w0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
    ref = torch.nn.functional.cross_entropy(x @ w + b, y) + 0.5 * 0.03 * (w * w).sum()
    ref.backward()
    assert float(loss) == pytest.approx(float(ref), rel=1e-12)
    assert torch.allclose(gw, w.grad, rtol=1e-10, atol=1e-13) and torch.allclose(gb, b.grad, rtol=1e-10, atol=1e-13)


def test_label_quality_row_cap_and_progress():
    z, y = _clusters(900, 6, 3, 0.5, seed=4)
    seen = []
    q = P.label_quality(z, y, max_rows=300, progress=lambda f, m: seen.append((f, m)))
    assert q["probes"]["rows"] == 300 and q["probes"]["rows_of"] == 900
    assert q["probes"]["knn"]["n_test"] == 60 and q["probes"]["linear"]["n_train"] == 240
    fr = [f for f, _ in seen]
    assert fr == sorted(fr) and 0 < fr[0] and fr[-1] <= 1.0 and {m for _, m in seen} == {"k-NN", "linear probe"}
    full = P.label_quality(z, y)
    assert full["probes"]["rows"] == 900 and "rows" in full["probes"]
