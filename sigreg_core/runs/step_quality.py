"""The quality measures a run logs per step, beside SIGReg: LiDAR of views and, with labels, the probes.

:meth:`sigreg_core.runs.writer.RunWriter.log` (``labels=``) and the Lightning callback call
:func:`step_quality`; its values are stored as scalars of the step, so the Monitor page draws
them as curves like any logged scalar.

* **alpha-ReQ** (Agrawal et al., NeurIPS 2022: the exponent alpha of lambda_k ∝ k^-alpha fitted
  to the covariance eigenvalues; :mod:`sigreg_core.assessment.alpha_req`) comes with the step's
  summary at no extra cost (the eigenvalues are already computed for RankMe); the writer copies it.
* **LiDAR** (Thilak et al. 2023, arXiv 2312.04000: the effective rank of
  Sigma_w^-1/2 Sigma_b Sigma_w^-1/2, each sample's views forming its class;
  :mod:`sigreg_core.assessment.lidar`) when the embeddings are views (V, N, D) with V >= 2.
* With **labels** (one class per sample, length N): held-out **k-NN accuracy** (cosine,
  k = 20, votes exp(s / 0.07)) and **linear-probe accuracy** (multinomial logistic regression,
  L-BFGS) of :mod:`sigreg_core.assessment.probes`, on view 0 of views.

Bounded cost: every measure here runs on at most ``max_rows`` samples (default
:data:`QUALITY_ROWS` = 4096, a subsample seeded by the step, the same rows for the labels),
so a step costs a fixed amount whatever the batch: the D x D scatters of LiDAR (V N D^2 flops),
the k-NN similarities (0.2 N x 0.8 N x D) and the probe (<= 100 L-BFGS iterations (125 evaluations) of
~4 (0.8 N) D C flops each).  Measured on a loaded 2-core CPU (docs/quality.md): 4096 x 512 with
10 classes 2.8 s, with 1000 classes 11.7 s; with many classes log less often or lower the cap.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

__all__ = ["QUALITY_ROWS", "step_quality", "STEP_QUALITY_KEYS"]

#: samples the per-step quality measures use at most (a seeded subsample above it)
QUALITY_ROWS = 4096
#: the scalar keys :func:`step_quality` may return (alpha_req comes from the summary)
STEP_QUALITY_KEYS = ("alpha_req", "lidar", "knn_accuracy", "linear_probe_accuracy")


def _labels_array(labels) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        return labels.detach().cpu().numpy()
    return np.asarray(labels)


def _rows(n: int, max_rows: Optional[int], step: int) -> Optional[torch.Tensor]:
    if max_rows is None or n <= int(max_rows):
        return None
    g = torch.Generator().manual_seed((int(step) * 2654435761 + 1) & 0x7FFFFFFF)
    return torch.randperm(n, generator=g)[: int(max_rows)].sort().values


def step_quality(embeddings, labels=None, *, step: int = 0, max_rows: Optional[int] = QUALITY_ROWS) -> dict:
    """``{"lidar": ..., "knn_accuracy": ..., "linear_probe_accuracy": ...}`` (those that apply) of one step.

    ``embeddings``: (N, D), or views (V, N, D) (more leading axes are folded into views);
    ``labels``: one class per sample (length N), or None.  Raises a one-line
    :class:`~sigreg_core.util.errors.InputError` for bad labels (length, NaN, non-integer, classes).
    """
    from sigreg_core.assessment.probes import check_labels, label_quality

    t = embeddings.detach() if isinstance(embeddings, torch.Tensor) else torch.as_tensor(np.asarray(embeddings))
    if t.ndim < 2:
        raise ValueError(f"embeddings must have shape (..., N, D), got {tuple(t.shape)}")
    views = t.reshape(-1, t.shape[-2], t.shape[-1]) if t.ndim >= 3 else t.unsqueeze(0)
    n = int(views.shape[1])
    y = None if labels is None else check_labels(_labels_array(labels), n)
    idx = _rows(n, max_rows, step)
    if idx is not None:
        views = views.index_select(1, idx.to(views.device))
        y = None if y is None else y[idx.numpy()]
    out = {}
    if views.shape[0] >= 2 and views.shape[1] >= 2:
        from sigreg_core.assessment.lidar import views_metrics

        out.update(views_metrics(views.float()))
    if y is not None:
        q = label_quality(views[0].float(), y, device=views.device, seed=0)
        out["knn_accuracy"] = float(q["knn_accuracy"])
        out["linear_probe_accuracy"] = float(q["linear_probe_accuracy"])
    return out
