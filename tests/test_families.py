"""Slice families: reproducible random draws, axes, principal axes and the worst-direction search."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sigreg_core.core.directions import sample_directions
from sigreg_core.assessment.families import FAMILIES, make_directions


def test_random_is_lejepa_draw_and_coordinate_is_identity():
    z = np.zeros((10, 6), np.float32)
    a, info = make_directions(z, "random", 33, seed=5)
    assert torch.equal(a, sample_directions(6, 33, 5))
    assert not info["data_dependent"]
    e, _ = make_directions(z, "coordinate", 999)
    assert torch.equal(e, torch.eye(6))


def test_principal_recovers_a_planted_axis():
    rng = np.random.default_rng(0)
    d = 10
    v = rng.standard_normal(d)
    v /= np.linalg.norm(v)
    z = rng.standard_normal((3000, d)) + 4 * rng.standard_normal((3000, 1)) * v
    a, info = make_directions(z, "principal", d)
    a = a.numpy().astype(np.float64)
    assert a.shape == (d, d)
    np.testing.assert_allclose(a.T @ a, np.eye(d), atol=1e-5)
    assert abs(a[:, 0] @ v) > 0.99
    ev = info["eigenvalues"]
    assert ev[0] > 10 and all(ev[i] >= ev[i + 1] for i in range(d - 1))


def test_worst_direction_finds_hidden_non_gaussian_axis():
    rng = np.random.default_rng(1)
    n, d = 3000, 8
    v = rng.standard_normal(d)
    v /= np.linalg.norm(v)
    g = rng.standard_normal((n, d))
    g -= np.outer(g @ v, v)  # Gaussian in the complement
    z = (g + np.outer(rng.choice([-1.0, 1.0], n), v)).astype(np.float32)  # +-1 along v
    a, info = make_directions(z, "worst", 4, seed=0)
    assert a.shape == (d, 4)
    np.testing.assert_allclose(a.norm(dim=0).numpy(), 1.0, atol=1e-5)
    assert abs(float(a[:, 0].double().numpy() @ v)) > 0.9
    found = info["found_statistic_on_search_rows"]
    assert found[0] >= max(info["start_statistic"]) - 1e-9
    assert "descriptive" in info["p_values"]


def test_unknown_family():
    assert set(FAMILIES) == {"random", "coordinate", "principal", "worst"}
    with pytest.raises(ValueError, match="unknown slice family"):
        make_directions(np.zeros((3, 2)), "nope", 4)
