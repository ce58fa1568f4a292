"""Our SIGReg against lightly's own code from PyPI (not a transcription): value and gradient.

lightly draws ``torch.randn(D, M)`` from torch's global generator and normalises the
columns, so after ``torch.manual_seed(s)`` its directions are ``sample_directions(D, M, s)``
bit for bit; both then compute the lejepa preset (17 knots on [0, 3], trapezoid doubled,
× N).  CI installs lightly (requirements-peers.txt); elsewhere the test skips with the reason.
"""
from __future__ import annotations

import pytest
import torch

import sigreg_core as sc
from tests.peers import lightly_sigreg

LightlySIGReg, HOW = lightly_sigreg()
pytestmark = pytest.mark.skipif(LightlySIGReg is None, reason=HOW)


@pytest.mark.parametrize("n, d, m", [(256, 32, 64), (1000, 64, 512), (97, 300, 1024)])
def test_value_and_gradient_equal_lightlys(n, d, m):
    g = torch.Generator().manual_seed(n + d)
    z0 = torch.randn(n, d, generator=g)
    z0[:, : d // 3] *= 1.7  # off N(0, I): a non-trivial value and gradient
    z0[:, 0] += 0.5
    peer = LightlySIGReg(knots=17, t_max=3.0, num_vectors=m)
    for seed in (0, 123):
        zl = z0.clone().requires_grad_()
        torch.manual_seed(seed)
        v_peer = peer(zl)
        v_peer.backward()
        zo = z0.clone().requires_grad_()
        v_ours = sc.sigreg(zo, num_slices=m, seed=seed)
        v_ours.backward()
        assert v_ours.item() == pytest.approx(v_peer.item(), rel=2e-5), (seed, HOW)
        rel = ((zo.grad - zl.grad).double().norm() / zl.grad.double().norm()).item()
        assert rel < 2e-5, (seed, rel)


def test_the_module_follows_lightly_step_by_step():
    """SIGReg (the module) at step s uses seed + s: lightly seeded with that step gives the same loss."""
    z = torch.randn(400, 48, generator=torch.Generator().manual_seed(3))
    ours = sc.SIGReg(num_slices=256, seed=10)
    peer = LightlySIGReg(num_vectors=256)
    for step in range(3):
        torch.manual_seed(10 + step)
        assert ours(z).item() == pytest.approx(peer(z).item(), rel=2e-5), step
