"""Labels from every format, aligned with the loader's rows, and ``--labels`` in ``sigreg score`` / ``compare``."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from sigreg_core.assessment import probes as P
from sigreg_core.cli import main
from sigreg_core.inputs.errors import EmbeddingLoadError
from sigreg_core.inputs.labels import align_labels, load_labels
from sigreg_core.inputs.loading import load_embeddings

FAST = ["--slices", "64", "--null-draws", "0", "-q"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("quality")
    rng = np.random.default_rng(0)
    centres = np.random.default_rng(1).standard_normal((4, 12))
    y = rng.integers(0, 4, 500)
    z = (centres[y] + 0.8 * rng.standard_normal((500, 12))).astype(np.float32)
    np.save(d / "z.npy", z)
    np.save(d / "y.npy", y)
    np.save(d / "yf.npy", y.astype(np.float64))
    np.save(d / "z_noisy.npy", (z + 2.0 * rng.standard_normal(z.shape)).astype(np.float32))
    pd.DataFrame({"id": np.arange(500), "label": [f"k{v}" for v in y]}).to_csv(d / "y.csv", index=False)
    pd.DataFrame({"target": y, "w": rng.random(500)}).to_parquet(d / "y.parquet")
    np.savez(d / "both.npz", z=z, y=y)
    torch.save({"emb": torch.from_numpy(z), "meta": {"y": torch.from_numpy(y)}}, d / "both.pt")
    from safetensors.numpy import save_file
    save_file({"z": z, "y": y.astype(np.int64)}, str(d / "both.safetensors"))
    np.save(d / "short.npy", y[:400])
    np.save(d / "half.npy", y + 0.5)
    with open(d / "obj.npy", "wb") as f:  # a pickled object array: refused, never unpickled
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": (500,)})
        pickle.dump(list(range(500)), f)
    return {"dir": d, "z": z, "y": y}


@pytest.mark.parametrize("name,key", [("y.npy", None), ("yf.npy", None), ("y.parquet", None), ("both.npz", "y"),
                                      ("both.pt", "meta.y"), ("both.safetensors", "y")])
def test_labels_from_every_container_give_the_same_codes(files, name, key):
    y = load_labels(files["dir"] / name, key=key)
    assert np.array_equal(P.check_labels(y, 500), files["y"])


def test_text_labels_from_csv_are_encoded_in_sorted_order(files):
    y = load_labels(files["dir"] / "y.csv")  # two columns: the one named "label" is taken
    assert np.array_equal(P.check_labels(y, 500), files["y"])  # k0 < k1 < k2 < k3


def test_labels_follow_the_loaders_subsampling(files):
    emb = load_embeddings(files["dir"] / "z.npy", max_rows=123, seed=4)
    y = align_labels(load_labels(files["dir"] / "y.npy"), emb)
    assert y.shape == (123,)
    assert np.array_equal(y, files["y"][emb.row_indices])


@pytest.mark.parametrize("name,key,msg", [
    ("obj.npy", None, "Python objects"),
    ("both.npz", None, "holds 2 arrays"),
    ("both.npz", "nope", "has no array 'nope'"),
    ("y.parquet", "nope", "has no column 'nope'"),
])
def test_label_files_refused_in_one_line(files, name, key, msg):
    with pytest.raises(EmbeddingLoadError, match=msg) as err:
        load_labels(files["dir"] / name, key=key)
    assert "\n" not in str(err.value)


def run(argv, capsys):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_score_with_labels_reports_the_library_probes(files, capsys):
    d = files["dir"]
    code, out, err = run(["score", d / "z.npy", "--labels", d / "y.npy", "--json", *FAST], capsys)
    assert code == 0, err
    row = json.loads(out)[0]
    knn = P.knn_accuracy(files["z"], files["y"])
    lin = P.linear_probe_accuracy(files["z"], files["y"])
    assert row["knn_accuracy"] == knn.accuracy and row["knn_accuracy_interval"] == [knn.low, knn.high]
    assert row["linear_probe_accuracy"] == lin.accuracy
    assert row["alpha_req"] == pytest.approx(row["metrics"]["alpha_req"]) and row["alpha_req_fit_range"] == [1, 12]
    assert "lidar" not in row


def test_score_labels_key_in_the_same_container_and_table(files, capsys):
    code, out, err = run(["score", files["dir"] / "both.npz", "--key", "z", "--labels-key", "y", *FAST], capsys)
    assert code == 0, err
    assert "both.npz: α-ReQ 0.92 (fit k = 1..12)" in out and "k-NN accuracy" in out and "linear probe" in out


@pytest.mark.parametrize("labels,msg", [("short.npy", "400 values but the embeddings have 500 rows"),
                                        ("half.npy", "whole class numbers")])
def test_score_bad_labels_exit_2_with_one_line(files, capsys, labels, msg):
    code, out, err = run(["score", files["dir"] / "z.npy", "--labels", files["dir"] / labels, *FAST], capsys)
    assert code == 2 and msg in err and err.count("\n") == 1 and out == ""


def test_score_views_report_lidar(files, capsys, tmp_path):
    rng = np.random.default_rng(2)
    v = np.stack([files["z"], files["z"] + 0.1 * rng.standard_normal(files["z"].shape).astype(np.float32)])
    np.save(tmp_path / "views.npy", v)
    code, out, err = run(["score", tmp_path / "views.npy", "--json", *FAST], capsys)
    assert code == 0, err
    from sigreg_core.assessment.lidar import lidar
    assert json.loads(out)[0]["lidar"] == pytest.approx(lidar(v), rel=1e-9)


def test_compare_with_labels_ranks_by_probe_accuracy(files, capsys):
    d = files["dir"]
    argv = ["compare", d / "z_noisy.npy", d / "z.npy", "--labels", d / "y.npy", "--n-boot", "0", *FAST]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert "ranked by linear-probe accuracy (held out): z.npy" in out
    code, out, err = run(argv + ["--json"], capsys)
    q = json.loads(out)["quality"]
    assert q["z.npy"]["linear_probe_accuracy"] > q["z_noisy.npy"]["linear_probe_accuracy"]
    assert q["z.npy"]["knn_accuracy"] == P.knn_accuracy(files["z"], files["y"]).accuracy
    code, out, err = run(["compare", d / "z.npy", d / "z_noisy.npy", "--labels", d / "y.npy", "--labels",
                          d / "y.npy", "--labels", d / "y.npy", *FAST], capsys)
    assert code == 2 and "once per file" in err


def test_compare_without_labels_ranks_by_rankme(files, capsys):
    d = files["dir"]
    code, out, err = run(["compare", d / "z.npy", d / "z_noisy.npy", "--n-boot", "0", *FAST], capsys)
    assert code == 0, err
    line = next(ln for ln in out.splitlines() if ln.startswith("ranked by RankMe"))
    from sigreg_core.assessment.metrics import companion_metrics
    rk = {n: companion_metrics(np.load(d / n))["rankme"] for n in ("z.npy", "z_noisy.npy")}
    first = max(rk, key=rk.get)
    assert line.split(": ", 1)[1].startswith(first)


def test_score_labels_with_distributed_is_a_usage_error(files, capsys):
    d = files["dir"]
    code, out, err = run(["score", d / "z.npy", "--labels", d / "y.npy", "--distributed", *FAST], capsys)
    assert code == 2 and "not supported with --distributed" in err and err.count("\n") == 1


def test_present_quality_tables(files):
    from sigreg_core.assessment.alpha_req import alpha_req_reference
    from sigreg_core.assessment.metrics import companion_metrics
    from sigreg_core.compare.comparison import compare_sets
    from sigreg_core.present.quality import compare_quality_frame, quality_table

    z, y = files["z"], files["y"]
    m = companion_metrics(z)
    q = P.label_quality(z, y)
    t = quality_table(dict(m, lidar=3.5), 500, 12, views=2, probes=q)
    assert list(t["this set"])[:2] == [m["alpha_req"], 3.5]
    assert t["N(0, I) reference"].iloc[0] == alpha_req_reference(500, 12)["alpha"]
    assert t["this set"].iloc[3] == q["linear_probe_accuracy"]
    noisy = np.load(files["dir"] / "z_noisy.npy")
    cmp = compare_sets({"noisy": noisy, "z": z}, reference="noisy", num_slices=32, n_boot=0, null_draws=0)
    f = compare_quality_frame(cmp, {"noisy": P.label_quality(noisy, y), "z": q})
    assert list(f["set"]) == ["z", "noisy"]  # best probe first
    assert f["linear-probe accuracy"].iloc[0] == q["linear_probe_accuracy"]
    g = compare_quality_frame(cmp)
    assert list(g["RankMe"]) == sorted(g["RankMe"], reverse=True)


def test_label_keys_lists_what_could_be_the_labels(files):
    from sigreg_core.inputs.labels import label_keys

    d = files["dir"]
    assert label_keys(d / "both.npz", 500) == ["y"] and label_keys(d / "both.npz", 499) == []
    assert label_keys(d / "both.safetensors", 500) == ["y"] and label_keys(d / "both.pt", 500) == ["meta.y"]
    assert label_keys(d / "y.parquet", 500) == ["target", "w"]
    assert label_keys(d / "y.parquet", 500, named_columns_only=True) == ["target"]
    assert label_keys(d / "y.csv", 500) == ["id", "label"] and label_keys(d / "y.csv", 500, exclude="id") == ["label"]
    assert label_keys(d / "z.npy", 500) == [] and label_keys(d / "obj.npy", 500) == []
