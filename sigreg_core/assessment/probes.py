"""Probe accuracy with labels: weighted k-NN and a multinomial linear probe, on a held-out split.

When the user has labels for the rows, downstream quality can be measured directly
instead of inferred.  Both probes here train on one part of the rows and report
accuracy on the rest (a deterministic split, :func:`holdout_split`), with a 95 %
Wilson score interval (Wilson 1927) for the binomial proportion of correct
held-out predictions:

    centre = (p + z^2 / 2m) / (1 + z^2 / m),
    half   = z sqrt(p (1 - p) / m + z^2 / 4m^2) / (1 + z^2 / m),   z = 1.95996.

* **k-NN** (Wu et al., CVPR 2018, "Unsupervised feature learning via non-parametric
  instance discrimination"; the evaluation of DINO, Caron et al., ICCV 2021): rows
  are L2-normalised, every held-out row finds its k = 20 nearest training rows by
  cosine similarity s, each neighbour votes for its class with weight exp(s / T),
  T = 0.07, and the class with the largest total wins.  Similarities are computed
  in blocks of held-out rows (``block`` x N_train) with ``torch.topk``, so memory
  stays bounded at any N.
* **Linear probe**: multinomial logistic regression p(y = c | x) = softmax(W x + b)_c
  on standardised features (training-split mean and std), minimising the mean
  cross-entropy + (l2 / 2) ||W||^2 (the bias is not penalised) with full-batch
  L-BFGS in torch (strong-Wolfe line search; 100 iterations, 30 for problems over ~2e10 flops
  per evaluation), float32 on the chosen device, seeded
  and deterministic.  The objective is strictly convex, so the optimum is unique
  and equals scikit-learn's ``LogisticRegression(C = 1 / (n_train l2))`` on the
  same standardised features (the oracle in the tests).

Labels are data: :func:`check_labels` refuses, in one line, a length mismatch,
NaN, non-integer values, fewer than 2 classes or more than ``MAX_CLASSES``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import torch

from sigreg_core.util.errors import InputError

__all__ = ["INTERACTIVE_ROWS", "label_quality", "loss_and_gradient", "MAX_CLASSES", "KNN_K", "KNN_TEMPERATURE", "ProbeResult", "check_labels", "holdout_split",
           "wilson_interval", "knn_accuracy", "linear_probe_accuracy", "knn_predict"]

#: at most this many distinct classes (labels are data; a vote matrix is rows x classes)
MAX_CLASSES = 10_000
KNN_K = 20
KNN_TEMPERATURE = 0.07
HOLDOUT_FRACTION = 0.2
#: rows the app's probes use at most (a seeded subsample above it): at 16 384 x 512 with 1000 classes
#: both probes take about half a minute on a 2-core CPU (docs/quality.md), with a progress bar
INTERACTIVE_ROWS = 16_384
#: flops of one loss-and-gradient evaluation above which the probe's default iteration budget drops
LARGE_PROBE_WORK = 2e10
Z95 = 1.959963984540054


@dataclass
class ProbeResult:
    """A held-out accuracy with its 95 % Wilson interval and how it was obtained."""

    accuracy: float
    low: float
    high: float
    n_train: int
    n_test: int
    classes: int
    method: str
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def check_labels(labels, n: int) -> np.ndarray:
    """Labels as int64 class codes 0..C-1 (C <= ``MAX_CLASSES``), or a one-line ``ValueError``.

    Accepts integer arrays, float arrays holding whole numbers, and bool; strings are
    refused here (:mod:`sigreg_core.inputs.labels` encodes text classes first).
    """
    y = np.asarray(labels)
    if y.ndim == 2 and 1 in y.shape:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise InputError(f"labels must be one value per row (1-D), got shape {tuple(y.shape)}")
    if y.shape[0] != int(n):
        raise InputError(f"labels have {y.shape[0]:,} values but the embeddings have {int(n):,} rows; "
                         f"give one label per row, in the same order")
    if y.dtype == np.bool_:
        y = y.astype(np.int64)
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y)
        if bad.any():
            raise InputError(f"labels hold {int(bad.sum()):,} NaN/inf value(s) (first at row {int(np.argmax(bad))}); "
                             f"drop those rows or give them a class")
        frac = y != np.round(y)
        if frac.any():
            i = int(np.argmax(frac))
            raise InputError(f"labels must be whole class numbers, row {i} holds {float(y[i])!r}")
        if np.abs(y).max(initial=0.0) > 2.0**53:
            raise InputError("labels hold values beyond 2^53, not exact class numbers")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "iu":
        raise InputError(f"labels must be integer class numbers, got dtype {y.dtype}")
    classes, codes = np.unique(y, return_inverse=True)
    if classes.size > MAX_CLASSES:
        raise InputError(f"labels have {classes.size:,} distinct classes, over the limit of {MAX_CLASSES:,}")
    if classes.size < 2:
        raise InputError(f"labels need at least 2 classes, got {classes.size}")
    return codes.astype(np.int64).reshape(-1)


def holdout_split(n: int, fraction: float = HOLDOUT_FRACTION, seed: int = 0) -> tuple:
    """(train, test) row indices: a seeded permutation, the first ``round(fraction n)`` held out (each >= 1)."""
    n = int(n)
    if n < 2:
        raise InputError(f"a held-out split needs at least 2 rows, got {n}")
    if not 0.0 < float(fraction) < 1.0:
        raise InputError(f"the held-out fraction must be in (0, 1), got {fraction}")
    m = min(max(int(round(float(fraction) * n)), 1), n - 1)
    perm = np.random.default_rng(int(seed)).permutation(n)
    return np.sort(perm[m:]), np.sort(perm[:m])


def wilson_interval(correct: int, total: int, z: float = Z95) -> tuple:
    """The Wilson score interval of a binomial proportion (Wilson 1927)."""
    if total <= 0:
        return float("nan"), float("nan")
    p = correct / total
    z2 = z * z
    den = 1.0 + z2 / total
    centre = (p + z2 / (2 * total)) / den
    half = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / den
    # at p = 0 or 1 an end is exactly p; round-off must not put it on the wrong side
    return min(max(0.0, centre - half), p), max(min(1.0, centre + half), p)


def _features(z) -> torch.Tensor:
    t = z.detach() if isinstance(z, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(np.asarray(z)))
    if t.ndim != 2:
        raise InputError(f"probes need embeddings of shape (N, D), got {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.to(torch.float32)
    if not bool(torch.isfinite(t).all()):
        raise InputError("embeddings hold NaN/inf values; drop those rows first")
    return t


def knn_predict(train_x, train_y, test_x, classes: int, *, k: int = KNN_K, temperature: float = KNN_TEMPERATURE,
                block: int = 1024, device="cpu", progress=None) -> np.ndarray:
    """Weighted k-NN class predictions of ``test_x`` (rows L2-normalised here; cosine similarity).

    ``progress(fraction)``, when given, is called after each block of held-out rows."""
    dev = torch.device(device)
    xtr = torch.nn.functional.normalize(_features(train_x).to(dev, torch.float32), dim=1)
    xte = torch.nn.functional.normalize(_features(test_x).to(dev, torch.float32), dim=1)
    ytr = torch.as_tensor(np.asarray(train_y, dtype=np.int64), device=dev)
    kk = min(int(k), xtr.shape[0])
    out = np.empty(xte.shape[0], dtype=np.int64)
    for r0 in range(0, xte.shape[0], block):
        sim = xte[r0 : r0 + block] @ xtr.T
        s, idx = sim.topk(kk, dim=1)
        del sim
        w = torch.exp((s.to(torch.float64) - 1.0) / temperature)  # exp(s / T) up to a common factor
        votes = torch.zeros(s.shape[0], classes, dtype=torch.float64, device=dev)
        votes.scatter_add_(1, ytr[idx], w)
        out[r0 : r0 + block] = votes.argmax(1).cpu().numpy()
        if progress is not None:
            progress(min(1.0, (r0 + block) / max(1, xte.shape[0])))
    return out


def knn_accuracy(z, labels, *, k: int = KNN_K, temperature: float = KNN_TEMPERATURE,
                 fraction: float = HOLDOUT_FRACTION, seed: int = 0, device="cpu", block: int = 1024,
                 progress=None) -> ProbeResult:
    """Held-out weighted k-NN accuracy (cosine, k = 20, votes exp(s / 0.07)) with its Wilson interval."""
    import time
    t0 = time.perf_counter()
    x = _features(z)
    y = check_labels(labels, x.shape[0])
    c = int(y.max()) + 1
    tr, te = holdout_split(x.shape[0], fraction, seed)
    pred = knn_predict(x[torch.from_numpy(tr)], y[tr], x[torch.from_numpy(te)], c, k=k, temperature=temperature,
                       block=block, device=device, progress=progress)
    correct = int(np.sum(pred == y[te]))
    lo, hi = wilson_interval(correct, te.size)
    return ProbeResult(correct / te.size, lo, hi, int(tr.size), int(te.size), c,
                       f"k-NN, cosine, k = {min(k, tr.size)}, votes exp(s / {temperature:g}), "
                       f"{te.size:,} held-out rows (seed {seed})", time.perf_counter() - t0)


def loss_and_gradient(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor, l2: float) -> tuple:
    """(loss, dW, db) of mean cross-entropy + (l2 / 2) ||W||^2, written out instead of autograd.

    With logits Z = X W + b and P = softmax(Z): loss = mean_n(logsumexp(Z_n) - Z_n,y_n) + (l2 / 2) ||W||^2,
    dW = X^T (P - Y) / n + l2 W, db = mean_n (P - Y)_n (Y one-hot).  One n x C buffer is reused in place
    (logits, exp, P - Y), so an evaluation is the two GEMMs and a few passes over that buffer; autograd
    kept three n x C tensors and took ~1.5x the time at 52 429 x 512 x 1000 (benchmarks/bench_probes.py).
    """
    n = x.shape[0]
    z = torch.addmm(b, x, w)                        # logits
    zy = z.gather(1, y[:, None])
    m = z.amax(1, keepdim=True)
    z.sub_(m).exp_()
    s = z.sum(1, keepdim=True)
    loss = (s.log() + m - zy).to(torch.float64).mean() + 0.5 * l2 * float((w.double() * w.double()).sum())
    z.div_(s)                                        # P
    z.scatter_add_(1, y[:, None], torch.full_like(zy, -1.0))  # P - Y
    gb = z.sum(0).div_(n)
    gw = torch.mm(x.T, z).div_(n).add_(w, alpha=l2)
    return loss, gw, gb


def fit_logistic(x: torch.Tensor, y: torch.Tensor, classes: int, *, l2: float = 1e-4, max_iter: int = 100,
                 tol: float = 1e-6, seed: int = 0, progress=None) -> tuple:
    """(W, b) minimising mean cross-entropy + (l2 / 2) ||W||^2 by full-batch L-BFGS (x already standardised).

    The loss and its gradient come from :func:`loss_and_gradient` (no autograd).  ``progress(fraction)``,
    when given, is called after each evaluation (of at most ``1.25 max_iter``, L-BFGS's own cap)."""
    torch.manual_seed(int(seed))  # nothing random is drawn; kept so the probe never depends on global state
    d = x.shape[1]
    w = torch.zeros(d, classes, dtype=x.dtype, device=x.device, requires_grad=True)
    b = torch.zeros(classes, dtype=x.dtype, device=x.device, requires_grad=True)
    max_eval = int(max_iter) * 5 // 4
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=int(max_iter), max_eval=max_eval, history_size=20,
                            tolerance_grad=tol, tolerance_change=1e-12, line_search_fn="strong_wolfe")
    evals = [0]

    def closure():
        with torch.no_grad():
            loss, gw, gb = loss_and_gradient(x, y, w, b, l2)
        w.grad, b.grad = gw, gb
        evals[0] += 1
        if progress is not None:
            progress(min(1.0, evals[0] / max(1, max_eval)))
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def default_iterations(n_train: int, dim: int, classes: int) -> int:
    """L-BFGS iterations by default: 100 (scikit-learn's default) while one evaluation of the loss and its
    gradient (about 4 n_train D C flops) stays under ``LARGE_PROBE_WORK``, else 30: at 65 536 x 512 with
    1000 classes an evaluation is ~110 GFLOP, and the held-out accuracy moves by < 0.001 between 20 and 30
    iterations there (benchmarks/bench_probes.py, docs/quality.md)."""
    return 100 if 4.0 * n_train * dim * classes <= LARGE_PROBE_WORK else 30


def linear_probe_accuracy(z, labels, *, l2: float = 1e-4, max_iter: Optional[int] = None,
                          fraction: float = HOLDOUT_FRACTION, seed: int = 0, device="cpu", progress=None) -> ProbeResult:
    """Held-out accuracy of a multinomial logistic-regression probe (L-BFGS, torch) with its Wilson interval.

    ``max_iter`` defaults to :func:`default_iterations` (100, or 30 for very large problems)."""
    import time
    t0 = time.perf_counter()
    x = _features(z)
    y = check_labels(labels, x.shape[0])
    c = int(y.max()) + 1
    tr, te = holdout_split(x.shape[0], fraction, seed)
    dev = torch.device(device)
    xtr = x[torch.from_numpy(tr)].to(dev, torch.float32)
    xte = x[torch.from_numpy(te)].to(dev, torch.float32)
    mu = xtr.mean(0, dtype=torch.float64)
    sd = xtr.to(torch.float64).std(0, unbiased=False).clamp_min(1e-12)
    xtr = ((xtr - mu.float()) / sd.float())
    xte = ((xte - mu.float()) / sd.float())
    ytr = torch.as_tensor(y[tr], device=dev)
    if max_iter is None:
        max_iter = default_iterations(tr.size, x.shape[1], c)
    w, b = fit_logistic(xtr, ytr, c, l2=l2, max_iter=max_iter, seed=seed, progress=progress)
    pred = (xte @ w + b).argmax(1).cpu().numpy()
    correct = int(np.sum(pred == y[te]))
    lo, hi = wilson_interval(correct, te.size)
    return ProbeResult(correct / te.size, lo, hi, int(tr.size), int(te.size), c,
                       f"multinomial logistic regression (L-BFGS <= {max_iter} iterations, l2 = {l2:g}, "
                       f"standardised), "
                       f"{te.size:,} held-out rows (seed {seed})", time.perf_counter() - t0)


def label_quality(z, labels, *, device="cpu", seed: int = 0, max_rows: Optional[int] = None, progress=None) -> dict:
    """Both probes on embeddings ``z`` with ``labels`` (class codes), as flat JSON-ready keys.

    ``knn_accuracy`` and ``linear_probe_accuracy`` (floats), their ``..._interval`` ([low, high],
    95 % Wilson) and ``probes`` (the details).  For views (V, N, D) the probes use view 0:
    mixing views of one sample across the split would leak it into the training rows.

    ``max_rows``: above it, both probes run on a seeded uniform subsample of that many rows (the
    labels follow; ``probes["rows"]`` and ``probes["rows_of"]`` say so) — the app uses
    :data:`INTERACTIVE_ROWS`.  ``progress(fraction, message)``, when given, is called as the k-NN
    blocks and the probe's evaluations finish (the k-NN share weighted by its flops).
    """
    view = None
    if getattr(z, "ndim", 2) == 3:
        z, view = z[0], 0
    x = _features(z)
    y = check_labels(labels, x.shape[0])
    n_all = int(x.shape[0])
    if max_rows is not None and n_all > int(max_rows):
        keep = np.sort(np.random.default_rng(int(seed) + 7919).choice(n_all, int(max_rows), replace=False))
        x, y = x[torch.from_numpy(keep)], y[keep]
    n, d, c = int(x.shape[0]), int(x.shape[1]), int(np.unique(y).size)
    n_tr = n - max(1, int(round(HOLDOUT_FRACTION * n)))
    knn_work = (n - n_tr) * n_tr * d
    probe_work = 4.0 * n_tr * d * c * 1.25 * default_iterations(n_tr, d, c)
    share = knn_work / max(1.0, knn_work + probe_work)

    def part(lo, hi, what):
        if progress is None:
            return None
        return lambda f: progress(lo + (hi - lo) * float(f), what)

    knn = knn_accuracy(x, y, seed=seed, device=device, progress=part(0.0, share, "k-NN"))
    lin = linear_probe_accuracy(x, y, seed=seed, device=device, progress=part(share, 1.0, "linear probe"))
    return {
        "knn_accuracy": knn.accuracy, "knn_accuracy_interval": [knn.low, knn.high],
        "linear_probe_accuracy": lin.accuracy, "linear_probe_accuracy_interval": [lin.low, lin.high],
        "probes": {"knn": knn.to_dict(), "linear": lin.to_dict(), "view": view, "rows": n, "rows_of": n_all},
    }
