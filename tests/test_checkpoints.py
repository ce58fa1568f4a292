"""Embeddings from checkpoints: state_dict + user factory (``sigreg embed``), TorchScript and torch.export encoders.

Oracle: the embeddings equal the model's formula evaluated by hand in float64 numpy
(x W^T + b, mean pooling, embedding lookups); safety: a pickled checkpoint is refused
and its payload never runs.
"""
from __future__ import annotations

import argparse
import os
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from sigreg_core.inputs.checkpoints import (
    CheckpointError,
    add_embed_parser,
    embed,
    embed_checkpoint,
    embed_state_dict,
    encoder_kind,
    load_probe,
    load_state_dict_file,
    run_embed,
)

MODEL_CODE = textwrap.dedent(
    """
    import torch

    class Enc(torch.nn.Module):
        def __init__(self, d_in=8, d_out=5):
            super().__init__()
            self.proj = torch.nn.Linear(d_in, d_out)

        def forward(self, x):
            return self.proj(x)

    def build():
        return Enc()

    class Seq(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(50, 6)

        def forward(self, ids):
            return self.emb(ids)  # (B, T, 6): needs pooling

    def build_seq():
        return Seq()

    def tuple_model():
        class T(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = torch.nn.Linear(8, 3)

            def forward(self, x):
                return {"loss": x.sum(), "z": self.lin(x)}
        return T()

    NOT_A_MODEL = 3
    """
)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A directory holding the user's model code, made the current directory (as a user runs `sigreg embed`)."""
    mod = f"lh_user_models_{os.getpid()}_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / f"{mod}.py").write_text(MODEL_CODE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path, mod
    sys.modules.pop(mod, None)


def _model(mod):
    import importlib

    return importlib.import_module(mod)


def _probe(tmp_path, n=37, d=8, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    p = tmp_path / "probe.safetensors"
    save_file({"x": x}, str(p))
    return x, p


def _linear_oracle(sd, x):
    w = sd["proj.weight"].double().numpy()
    b = sd["proj.bias"].double().numpy()
    return x.astype(np.float64) @ w.T + b


def _args(argv):
    parser = argparse.ArgumentParser(prog="sigreg")
    sub = parser.add_subparsers(dest="command")
    add_embed_parser(sub)
    return parser.parse_args(["embed", *argv])


# ----------------------------------------------------------------------------- state_dict route
def test_sigreg_embed_state_dict_matches_the_formula(workdir, capsys):
    tmp, mod = workdir
    torch.manual_seed(0)
    model = _model(mod).build()
    sd = model.state_dict()
    torch.save(sd, tmp / "ckpt.pt")
    x, probe = _probe(tmp)
    rc = run_embed(_args(["--model", f"{mod}:build", "--checkpoint", "ckpt.pt", "--probe", str(probe),
                          "--out", "emb.safetensors", "--batch-size", "10", "--device", "cpu"]))
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert out.startswith("wrote emb.safetensors: 37 x 5 embeddings")
    z = load_file(str(tmp / "emb.safetensors"))["embeddings"]
    assert z.dtype == np.float32 and z.shape == (37, 5)
    np.testing.assert_allclose(z, _linear_oracle(sd, x), rtol=1e-5, atol=1e-6)


def test_nested_training_checkpoint_and_ddp_prefix_are_unwrapped(workdir):
    tmp, mod = workdir
    torch.manual_seed(1)
    sd = _model(mod).build().state_dict()
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in sd.items()}, "lr": 0.1}, tmp / "train.pt")
    got, notes = load_state_dict_file(tmp / "train.pt")
    assert set(got) == set(sd) and any("'state_dict'" in n for n in notes) and any("module." in n for n in notes)
    x, probe = _probe(tmp)
    res = embed_state_dict(f"{mod}:build", tmp / "train.pt", probe, None, device="cpu")
    np.testing.assert_allclose(res.array, _linear_oracle(sd, x), rtol=1e-5, atol=1e-6)
    assert res.out is None


class _Payload:
    def __reduce__(self):
        return (open, ("PWNED", "w"))


def test_pickled_checkpoints_are_refused_and_never_run(workdir, capsys):
    tmp, mod = workdir
    with open(tmp / "evil.pt", "wb") as f:
        torch.save({"proj.weight": torch.zeros(5, 8), "x": _Payload()}, f)
    _, probe = _probe(tmp)
    rc = run_embed(_args(["--model", f"{mod}:build", "--checkpoint", "evil.pt", "--probe", str(probe),
                          "--out", "emb.safetensors"]))
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "weights_only" in err
    assert not (tmp / "PWNED").exists() and not (tmp / "emb.safetensors").exists()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--model", "{mod}:build", "--checkpoint", "wrong.pt"], "does not fit"),
        (["--model", "{mod}:nope", "--checkpoint", "ckpt.pt"], "has no 'nope'"),
        (["--model", "no_such_module_xyz:build", "--checkpoint", "ckpt.pt"], "cannot import"),
        (["--model", "{mod}", "--checkpoint", "ckpt.pt"], "package.module:factory"),
        (["--model", "{mod}:NOT_A_MODEL", "--checkpoint", "ckpt.pt"], "not callable"),
        (["--model", "{mod}:build"], "needs --checkpoint"),
        (["--model", "{mod}:build", "--checkpoint", "missing.pt"], "not found"),
        (["--model", "{mod}:build_seq", "--checkpoint", "seq.pt"], "probe"),
        (["--encoder", "ckpt.pt"], "--model"),
    ],
)
def test_bad_embed_input_exits_2_with_one_line(workdir, capsys, argv, needle):
    tmp, mod = workdir
    torch.save(_model(mod).build().state_dict(), tmp / "ckpt.pt")
    torch.save({"proj.weight": torch.zeros(3, 3), "proj.bias": torch.zeros(3)}, tmp / "wrong.pt")
    torch.save(_model(mod).build_seq().state_dict(), tmp / "seq.pt")
    _, probe = _probe(tmp)
    argv = [a.replace("{mod}", mod) for a in argv] + ["--probe", str(probe), "--out", "emb.safetensors"]
    rc = run_embed(_args(argv))
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sigreg embed: error:"), err
    assert needle in lines[0]
    assert not (tmp / "emb.safetensors").exists()


def test_token_id_probe_keeps_its_dtype_and_mean_pooling_matches(workdir):
    tmp, mod = workdir
    torch.manual_seed(2)
    seq = _model(mod).build_seq()
    torch.save(seq.state_dict(), tmp / "seq.pt")
    ids = np.random.default_rng(3).integers(0, 50, (20, 7)).astype(np.int64)
    save_file({"ids": ids}, str(tmp / "ids.safetensors"))
    probe, _ = load_probe(tmp / "ids.safetensors")
    assert probe.dtype == np.int64 and probe.shape == (20, 7)
    with pytest.raises(CheckpointError, match="pool"):
        embed_state_dict(f"{mod}:build_seq", tmp / "seq.pt", tmp / "ids.safetensors", device="cpu")
    res = embed_state_dict(f"{mod}:build_seq", tmp / "seq.pt", tmp / "ids.safetensors", device="cpu", pool="mean")
    table = seq.emb.weight.detach().double().numpy()
    np.testing.assert_allclose(res.array, table[ids].mean(1), rtol=1e-5, atol=1e-6)
    first = embed_state_dict(f"{mod}:build_seq", tmp / "seq.pt", tmp / "ids.safetensors", device="cpu", pool="first")
    np.testing.assert_allclose(first.array, table[ids[:, 0]], rtol=1e-6)


def test_dict_outputs_need_an_output_key(workdir):
    tmp, mod = workdir
    model = _model(mod).tuple_model()
    x = np.random.default_rng(4).standard_normal((9, 8)).astype(np.float32)
    with pytest.raises(CheckpointError, match="output_key"):
        embed(model, x, device="cpu")
    z = embed(model, x, device="cpu", output_key="z", batch_size=4)
    w, b = model.lin.weight.detach().double().numpy(), model.lin.bias.detach().double().numpy()
    np.testing.assert_allclose(z, x.astype(np.float64) @ w.T + b, rtol=1e-5, atol=1e-6)


def test_image_probe_of_any_rank_is_read_without_pickle(tmp_path):
    x = np.random.default_rng(5).standard_normal((6, 3, 4, 4)).astype(np.float32)
    np.save(tmp_path / "img.npy", x)
    got, _ = load_probe(tmp_path / "img.npy")
    np.testing.assert_array_equal(got, x)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match="pickle"):
        load_probe(tmp_path / "obj.npy")
    sub, notes = load_probe(tmp_path / "img.npy", max_rows=4)
    assert sub.shape == (4, 3, 4, 4) and notes and "4 of 6" in notes[0]


# ----------------------------------------------------------------------------- serialised encoders
def _encoders(tmp):
    torch.manual_seed(6)
    m = torch.nn.Sequential(torch.nn.Linear(8, 5), torch.nn.Tanh())
    torch.jit.save(torch.jit.script(m), str(tmp / "enc.ts.pt"))
    ep = torch.export.export(m, (torch.randn(4, 8),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(ep, str(tmp / "enc.pt2"))
    torch.save(m.state_dict(), tmp / "weights.pt")
    w, b = m[0].weight.detach().double().numpy(), m[0].bias.detach().double().numpy()
    return lambda x: np.tanh(x.astype(np.float64) @ w.T + b)


def test_torchscript_and_export_encoders_on_a_probe(tmp_path):
    oracle = _encoders(tmp_path)
    x, probe = _probe(tmp_path, n=23)
    assert encoder_kind(tmp_path / "enc.ts.pt") == "torchscript"
    assert encoder_kind(tmp_path / "enc.pt2") == "export"
    with pytest.raises(CheckpointError, match="--model"):
        encoder_kind(tmp_path / "weights.pt")
    for name in ("enc.ts.pt", "enc.pt2"):
        res = embed_checkpoint(tmp_path / name, probe, batch_size=5, device="cpu", confine=False)
        assert res.array.shape == (23, 5)
        np.testing.assert_allclose(res.array, oracle(x), rtol=1e-5, atol=1e-6)
        assert res.meta["encoder_kind"] in ("torchscript", "export")


def test_encoders_are_read_only_below_the_allowed_roots(tmp_path):
    _encoders(tmp_path)
    _, probe = _probe(tmp_path)
    inside = tmp_path / "root"
    inside.mkdir()
    with pytest.raises(CheckpointError, match="outside the allowed directories"):
        embed_checkpoint(tmp_path / "enc.pt2", probe, roots=[inside], device="cpu")
    (inside / "enc.pt2").write_bytes((tmp_path / "enc.pt2").read_bytes())
    (inside / "probe.safetensors").write_bytes(probe.read_bytes())
    res = embed_checkpoint("enc.pt2", "probe.safetensors", roots=[inside], device="cpu")
    assert res.array.shape == (37, 5)


def test_sigreg_embed_with_an_encoder(tmp_path, capsys, monkeypatch):
    oracle = _encoders(tmp_path)
    x, probe = _probe(tmp_path)
    monkeypatch.chdir(tmp_path)
    rc = run_embed(_args(["--encoder", "enc.ts.pt", "--probe", str(probe), "--out", "e.safetensors", "--device", "cpu"]))
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "torchscript" in out
    np.testing.assert_allclose(load_file("e.safetensors")["embeddings"], oracle(x), rtol=1e-5, atol=1e-6)
    rc = run_embed(_args(["--encoder", "enc.ts.pt", "--probe", str(probe), "--out", "e.npy"]))
    _, err = capsys.readouterr()
    assert rc == 2 and ".safetensors" in err
