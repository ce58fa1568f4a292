"""Ranking a comparison by one measure (issue 22): compare.ranking.rank_by, the quality frame, and
``sigreg compare --rank-by``; each order checked against values computed independently here."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sigreg_core.assessment import probes as P
from sigreg_core.cli import main
from sigreg_core.compare.comparison import compare_sets
from sigreg_core.compare.ranking import RANK_MEASURES, available_measures, rank_by, rank_order
from sigreg_core.present.quality import compare_quality_frame

FAST = ["--slices", "64", "--null-draws", "0", "-q", "--n-boot", "0"]


def _rankme_oracle(z: np.ndarray) -> float:
    """RankMe (Garrido et al. 2023) written out: exp of the entropy of the normalised singular values (float64)."""
    s = np.linalg.svd(z.astype(np.float64), compute_uv=False)
    p = s / s.sum() + 1e-7
    return float(np.exp(-(p * np.log(p)).sum()))


@pytest.fixture(scope="module")
def sets():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 12)) * 2
    y = rng.integers(0, 4, 400)
    good = (centres[y] + rng.standard_normal((400, 12))).astype(np.float32)
    low_rank = (rng.standard_normal((400, 3)) @ rng.standard_normal((3, 12))).astype(np.float32)
    noisy = (good + 3.0 * rng.standard_normal(good.shape)).astype(np.float32)
    iso = rng.standard_normal((400, 12)).astype(np.float32)
    arrays = {"good": good, "low_rank": low_rank, "noisy": noisy, "iso": iso}
    cmp = compare_sets(arrays, reference="good", num_slices=32, n_boot=0, null_draws=0)
    return arrays, y, cmp


def test_rank_by_each_label_free_measure_matches_an_independent_order(sets):
    arrays, _, cmp = sets
    assert rank_by(cmp, "verdict") == rank_order(cmp)
    oracle = {n: _rankme_oracle(a) for n, a in arrays.items()}
    assert rank_by(cmp, "rankme") == sorted(oracle, key=lambda n: -oracle[n])
    alpha = {n: cmp.sets[n].metrics["alpha_req"] for n in cmp.names}
    assert rank_by(cmp, "alpha_req") == sorted(alpha, key=lambda n: abs(alpha[n] - 1.0))
    xn = {n: cmp.sets[n].sigreg / cmp.sets[n].null_mean for n in cmp.names}
    assert rank_by(cmp, "x_null") == sorted(xn, key=xn.get)
    assert rank_by(cmp, "rankme")[-1] == "low_rank"  # 3 of 12 directions used


def test_rank_by_probe_accuracy_and_refusals(sets):
    arrays, y, cmp = sets
    assert set(available_measures(cmp)) == {"verdict", "rankme", "alpha_req", "x_null"}
    with pytest.raises(ValueError, match="needs labels"):
        rank_by(cmp, "knn_accuracy")
    with pytest.raises(ValueError, match="needs views"):
        rank_by(cmp, "lidar")
    with pytest.raises(ValueError, match="one of"):
        rank_by(cmp, "loss")
    probes = {n: P.label_quality(a, y) for n, a in arrays.items() if n != "iso"}  # one set without labels: last
    acc = {n: probes[n]["linear_probe_accuracy"] for n in probes}
    order = rank_by(cmp, "linear_probe_accuracy", probes)
    assert order[-1] == "iso" and order[:3] == sorted(acc, key=lambda n: (-acc[n], rank_order(cmp).index(n)))
    f = compare_quality_frame(cmp, probes, by="linear_probe_accuracy")
    assert list(f["set"]) == order and list(f["rank"]) == [1, 2, 3, 4] and f.attrs["ranked_by"] == "linear_probe_accuracy"
    assert f.loc[f["set"] == "good", "linear-probe accuracy"].item() == acc["good"]
    g = compare_quality_frame(cmp, by="verdict")
    assert list(g["set"]) == rank_order(cmp) and list(g["verdict"]) == [cmp.sets[n].verdict for n in g["set"]]


def test_views_make_lidar_rankable(sets):
    arrays, _, _ = sets
    rng = np.random.default_rng(3)
    v = {n: np.stack([a, a + 0.5 * rng.standard_normal(a.shape).astype(np.float32)]) for n, a in arrays.items()}
    cmp = compare_sets(v, reference="good", num_slices=16, n_boot=0, null_draws=0)
    from sigreg_core.assessment.lidar import lidar
    oracle = {n: lidar(a) for n, a in v.items()}
    assert "lidar" in available_measures(cmp)
    assert rank_by(cmp, "lidar") == sorted(oracle, key=lambda n: -oracle[n])


def test_cli_rank_by(sets, tmp_path, capsys):
    arrays, y, _ = sets
    for n, a in arrays.items():
        np.save(tmp_path / f"{n}.npy", a)
    np.save(tmp_path / "y.npy", y)
    files = [tmp_path / f"{n}.npy" for n in arrays]
    assert main([str(a) for a in ["compare", *files, "--rank-by", "rankme", *FAST]]) == 0
    out = capsys.readouterr().out
    oracle = {f"{n}.npy": _rankme_oracle(a) for n, a in arrays.items()}
    line = next(ln for ln in out.splitlines() if ln.startswith("ranked by RankMe: "))
    assert [p.split(" (")[0] for p in line.split(": ", 1)[1].split(" > ")] == sorted(oracle, key=lambda n: -oracle[n])
    assert main([str(a) for a in ["compare", *files, "--rank-by", "knn_accuracy", "--labels", tmp_path / "y.npy",
                                  "--json", *FAST]]) == 0
    doc = json.loads(capsys.readouterr().out)
    acc = {n: doc["quality"][n]["knn_accuracy"] for n in doc["ranked_by"]["order"]}
    assert doc["ranked_by"]["measure"] == "knn_accuracy" and list(acc.values()) == sorted(acc.values(), reverse=True)
    code = main([str(a) for a in ["compare", *files, "--rank-by", "knn_accuracy", *FAST]])
    err = capsys.readouterr().err
    assert code == 2 and "--rank-by" in err and "needs labels" in err and err.count("\n") == 1


def test_cli_choices_are_the_library_measures():
    import argparse

    from sigreg_core.compare.cli import add_compare_parser

    p = add_compare_parser(argparse.ArgumentParser().add_subparsers())
    act = next(a for a in p._actions if a.dest == "rank_by")
    assert list(act.choices) == list(RANK_MEASURES)
