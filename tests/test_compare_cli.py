"""``sigreg compare``: run_compare on argv lists parsed by add_compare_parser (table, JSON, exports, exit 2)."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import save_file

from sigreg_core.compare.comparison import add_compare_parser, run_compare

FAST = ["--slices", "48", "--n-boot", "30", "--null-draws", "0"]


def _run(argv, capsys):
    parser = argparse.ArgumentParser(prog="sigreg")
    sub = parser.add_subparsers(dest="command")
    add_compare_parser(sub)
    args = parser.parse_args(["compare", *argv])
    rc = run_compare(args)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    paths = {}
    for name, z in {
        "healthy": rng.standard_normal((400, 16)),
        "collapsed": 1.0 + 1e-3 * rng.standard_normal((300, 16)),
        "wide": rng.standard_normal((400, 32)),
        "tiny": rng.standard_normal((1, 16)),
    }.items():
        p = tmp_path / f"{name}.safetensors"
        save_file({"embeddings": z.astype(np.float32)}, str(p))
        paths[name] = str(p)
    np.save(tmp_path / "healthy.npy", rng.standard_normal((400, 16)).astype(np.float32))
    paths["healthy_npy"] = str(tmp_path / "healthy.npy")
    return paths


def test_table_with_deltas_and_paired_test(files, capsys):
    rc, out, err = _run([files["healthy"], files["collapsed"], *FAST], capsys)
    assert rc == 0, err
    assert "healthy.safetensors (ref)" in out and "collapsed.safetensors" in out
    assert "Deltas against healthy.safetensors" in out and "Paired test over slices" in out
    assert "Same N: every set scored on 300 rows; healthy.safetensors subsampled from 400" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("collapsed.safetensors") and "SIGReg" in ln)
    assert line.split()[-2:] == ["yes", "healthy.safetensors"]  # significant, the healthy set is healthier


def test_json_reference_by_position_and_exports(files, capsys, tmp_path):
    csv, html = tmp_path / "c.csv", tmp_path / "c.html"
    rc, out, err = _run([files["healthy"], files["collapsed"], "--reference", "2", "--json", "--csv", str(csv),
                         "--html", str(html), "--keep-all-rows", *FAST], capsys)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["config"]["reference"] == "collapsed.safetensors"
    assert doc["files"]["healthy.safetensors"] == files["healthy"]
    assert doc["sets"]["healthy.safetensors"]["rows"] == 400 and doc["caveats"]
    d = next(x for x in doc["deltas"] if x["metric"] == "sigreg")
    assert d["set"] == "healthy.safetensors" and d["value"] < 0 and d["significant"]
    assert d["healthier"] == "healthy.safetensors"
    df = pd.read_csv(csv)
    assert list(df["set"]) == ["healthy.safetensors", "collapsed.safetensors"]
    assert html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_same_file_twice_gives_zero_delta(files, capsys):
    rc, out, err = _run([files["healthy"], files["healthy"], "--json", *FAST], capsys)
    assert rc == 0, err
    doc = json.loads(out)
    assert list(doc["sets"]) == ["healthy.safetensors", "healthy.safetensors#2"]
    assert all(d["value"] == 0 and not d["significant"] for d in doc["deltas"])
    assert doc["paired_tests"][0]["wilcoxon_p"] == 1.0


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["healthy", "wide"], "differ in dimension"),
        (["healthy"], "at least 2 files"),
        (["healthy", "tiny"], "row"),
        (["healthy", "collapsed", "--reference", "nope"], "--reference"),
        (["healthy", "missing"], "missing"),
        (["healthy", "collapsed", "--n-boot", "3"], "at least 20"),
        (["healthy", "collapsed", "--slices", "0"], "--slices"),
    ],
)
def test_bad_input_exits_2_with_one_line(files, capsys, argv, needle):
    paths = [files.get(a, a if a.startswith("-") or a.isdigit() or a == "nope"
                       else str(files["healthy"]).replace("healthy.safetensors", a + ".safetensors")) for a in argv]
    rc, out, err = _run(paths + ["--null-draws", "0"], capsys)
    assert rc == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sigreg compare: error:"), err
    assert needle in lines[0]
    assert "Traceback" not in err


def test_normalised_rows_and_views_compare_and_say_the_rescale(tmp_path, capsys):
    """L2-normalised rows exited 3 ("did not use the comparison's directions"); (V, N, D) files were refused."""
    rng = np.random.default_rng(5)
    mu = rng.standard_normal(16)
    paths = []
    for i, spread in enumerate((2.0, 0.4)):
        z = mu + spread * rng.standard_normal((300, 16))
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        paths.append(str(tmp_path / f"unit{i}.npy"))
        np.save(paths[-1], z.astype(np.float32))
    views = str(tmp_path / "views.npy")
    np.save(views, rng.standard_normal((2, 300, 16)).astype(np.float32))
    rc, out, err = _run([*paths, views, *FAST], capsys)
    assert rc == 0, err
    assert "convention: unit0.npy: equal-norm (L2-normalised) rows" in out
    assert "convention: unit1.npy:" in out and "convention: views.npy" not in out
    assert "caveat: The sets have different numbers of views" in out  # views.npy has 2, the others 1
    rc, out, err = _run([*paths, views, "--json", *FAST], capsys)
    doc = json.loads(out)
    assert doc["sets"]["views.npy"]["views"] == 2 and doc["sets"]["unit0.npy"]["row_scale"][0] == pytest.approx(4.0)
    assert doc["ranking"] == list(doc["sets"])


def test_internal_errors_exit_3_with_one_line(files, capsys, monkeypatch):
    from sigreg_core.compare import cli

    def broken(*a, **k):
        raise ValueError("an internal ValueError is not bad input")

    monkeypatch.setattr(cli, "compare_sets", broken)
    monkeypatch.delenv("SIGREG_DEBUG", raising=False)
    rc, out, err = _run([files["healthy"], files["collapsed"], *FAST], capsys)
    assert rc == 3 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sigreg compare: internal error: ValueError: an internal"), err
