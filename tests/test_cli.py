"""The ``sigreg`` command line: every exit code, one-line errors, JSON equal to the library.

Most tests call ``main(argv)`` in-process (fast); a few run ``python -m sigreg_core``
in a subprocess to check the real exit status and that no traceback reaches stderr.
The oracle for the numbers is ``sigreg_core.assessment.assess.assess`` called directly on the
same array.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sigreg_core import cli
from sigreg_core.cli import main

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--slices", "64", "--null-draws", "0"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    z = rng.standard_normal((600, 16)).astype(np.float32)
    out = {"dir": d, "z": z}
    np.save(d / "healthy.npy", z)
    np.save(d / "shifted.npy", z + 0.5)
    collapsed = np.repeat(rng.standard_normal((1, 16)).astype(np.float32), 600, axis=0)
    collapsed += 1e-4 * rng.standard_normal((600, 16)).astype(np.float32)
    np.save(d / "collapsed.npy", collapsed)
    np.save(d / "views.npy", rng.standard_normal((2, 300, 16)).astype(np.float32))
    np.savez(d / "two.npz", a=z, b=z[:, :8])
    (d / "notes.txt").write_text("1,2\n3,4\n")
    zn = z.copy()
    zn[9, 1] = np.nan
    np.save(d / "nan.npy", zn)
    (d / "random.npy").write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    marker = d / "MARKER"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"z": torch.from_numpy(z), "x": Evil()}, d / "evil.pt")
    out["marker"] = marker
    return out


def run(argv, capsys):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# ----------------------------------------------------------------------------- exit 0 and 1


def test_table_output_and_exit_0(files, capsys):
    d = files["dir"]
    code, out, err = run(["score", d / "healthy.npy", d / "collapsed.npy", d / "views.npy", *FAST], capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["file", "rows", "dim"]
    healthy = next(ln for ln in lines if "healthy.npy" in ln)
    collapsed = next(ln for ln in lines if "collapsed.npy" in ln)
    assert " healthy " in healthy + " " and "600" in healthy
    assert "collapsed" in collapsed.split() and "full_collapse" in collapsed
    assert "(2 views)" in next(ln for ln in lines if "views.npy" in ln)


def test_json_matches_the_library(files, capsys):
    from sigreg_core.assessment.assess import assess

    d = files["dir"]
    code, out, err = run(["score", d / "healthy.npy", d / "collapsed.npy", "--json", "--seed", "3", *FAST], capsys)
    assert code == 0 and err == ""
    data = json.loads(out)
    assert [Path(r["file"]).name for r in data] == ["healthy.npy", "collapsed.npy"]
    for r, name in zip(data, ["healthy.npy", "collapsed.npy"]):
        ref = assess(np.load(d / name), num_slices=64, seed=3, null_draws=0).to_dict()
        assert r["rows"] == 600 and r["dim"] == 16 and r["num_views"] == 1
        for k in ("sigreg", "null_mean", "p_value", "verdict", "modes"):
            assert r[k] == ref[k], k
        assert r["per_slice"]["statistic"] == ref["per_slice"]["statistic"]
        assert r["config"]["seed"] == 3 and r["config"]["num_slices"] == 64
    assert data[0]["verdict"] == "healthy" and data[1]["verdict"] == "collapsed"


@pytest.mark.parametrize(
    "name, fail_on, expected",
    [
        ("healthy.npy", "suspicious", 0),
        ("healthy.npy", "collapsed", 0),
        ("shifted.npy", "collapsed", 0),
        ("shifted.npy", "suspicious", 1),
        ("collapsed.npy", "suspicious", 1),
        ("collapsed.npy", "collapsed", 1),
    ],
)
def test_fail_on_gates(files, capsys, name, fail_on, expected):
    code, out, err = run(["score", files["dir"] / name, "--fail-on", fail_on, "--json", *FAST], capsys)
    assert code == expected, (name, fail_on, out[-300:])
    verdict = json.loads(out)[0]["verdict"]
    assert verdict == {"healthy.npy": "healthy", "shifted.npy": "mild", "collapsed.npy": "collapsed"}[name]
    assert err == ""


def test_fail_on_any_of_several_files(files, capsys):
    d = files["dir"]
    code, _out, _err = run(["score", d / "healthy.npy", d / "collapsed.npy", "--fail-on", "collapsed", *FAST], capsys)
    assert code == 1


def test_options_reach_loader_and_assess(files, capsys):
    d = files["dir"]
    code, out, _ = run(["score", d / "two.npz", "--key", "b", "--max-rows", "100", "--json", *FAST], capsys)
    assert code == 0
    r = json.loads(out)[0]
    assert r["key"] == "b" and r["rows"] == 100 and r["dim"] == 8
    assert any("subsampled 600 → 100" in n for n in r["notices"])
    code, out, _ = run(["score", d / "views.npy", "--view", "1", "--json", "--family", "coordinate", "--preset", "gist", *FAST], capsys)
    r = json.loads(out)[0]
    assert code == 0 and r["num_views"] == 1 and r["view"] == 1 and r["rows"] == 300
    assert r["config"]["family"] == "coordinate" and r["config"]["preset"] == "gist"
    code, out, _ = run(["score", d / "nan.npy", "--drop-nonfinite", *FAST], capsys)
    assert code == 0 and "dropped 1 rows" in out


# ----------------------------------------------------------------------------- exit 2


@pytest.mark.parametrize(
    "argv, fragment",
    [
        ([], "choose a command"),
        (["score"], "required: FILE"),
        (["frobnicate"], "invalid choice"),
        (["score", "{d}/healthy.npy", "--slices", "0"], "--slices: expected a positive number"),
        (["score", "{d}/healthy.npy", "--preset", "nope"], "--preset: invalid choice"),
        (["score", "{d}/healthy.npy", "--family", "nope"], "--family: invalid choice"),
        (["score", "{d}/healthy.npy", "--fail-on", "sometimes"], "--fail-on: invalid choice"),
        (["score", "{d}/healthy.npy", "--bogus"], "unrecognized arguments: --bogus"),
        (["score", "{d}/healthy.npy", "--max-rows", "1"], "--max-rows must be at least 2"),
        (["score", "{d}/healthy.npy", "--max-bytes", "lots"], "cannot read byte limit"),
        (["score", "{d}/missing.npy"], "missing.npy: file not found"),
        (["score", "{d}/random.npy"], "random.npy: is not a valid .npy array"),
        (["score", "{d}/two.npz"], "several arrays"),
        (["score", "{d}/nan.npy"], "contain NaN values (first at row 9, column 1"),
        (["score", "{d}/evil.pt"], "refused: its pickle calls posix.system"),
        (["score", "{d}/healthy.npy", "{d}/missing.npy"], "missing.npy: file not found"),
        (["score", "{d}/healthy.npy", "{d}/notes.txt"], "notes.txt: unknown extension .txt"),
        (["score", "{d}/healthy.npy", "--distributed"], "must run under torchrun"),
        (["app", "--port", "70000"], "port must be at most 65535"),
    ],
)
def test_usage_and_input_errors_exit_2_with_one_line(files, capsys, monkeypatch, argv, fragment):
    for var in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    argv = [a.format(d=files["dir"]) for a in argv]
    if argv[:1] == ["score"] and len(argv) > 1:
        argv += ["--null-draws", "0"]
    code, out, err = run(argv, capsys)
    assert code == 2
    assert out == ""  # nothing half-printed on stdout
    line = one_line(err)
    assert line.startswith("sigreg")
    assert fragment in line, line
    assert not files["marker"].exists()


def test_cuda_requested_without_gpu_exits_2(files, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: --device cuda is valid here")
    code, _out, err = run(["score", files["dir"] / "healthy.npy", "--device", "cuda", *FAST], capsys)
    assert code == 2 and "no CUDA GPU is available" in one_line(err)


def test_help_and_version_exit_0(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0 and "score" in out and "app" in out
    code, out, _ = run(["score", "--help"], capsys)
    assert code == 0 and "--fail-on" in out and "--distributed" in out
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.startswith("sigreg ")


def test_contributed_subcommands_are_wired(capsys):
    """compare / embed / demo-train (other modules) are reachable through the same parser and error rules."""
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    for name in cli._extra_commands():
        assert name in out
        code, sub_help, _ = run([name, "--help"], capsys)
        assert code == 0 and sub_help.startswith("usage: sigreg " + name)
    if "compare" in cli._extra_commands():
        code, out, err = run(["compare", "--slices", "x", "a.npy", "b.npy"], capsys)
        assert code == 2 and out == "" and "--slices" in one_line(err)


def test_top_level_help_lists_every_command_without_importing_them():
    """``sigreg --help`` answers from argparse alone: the contributed commands' help lines, no torch import."""
    import argparse
    import subprocess
    import sys

    for name, (module, add, _run) in cli.EXTRA_COMMANDS.items():  # the static help is the module's own
        import importlib

        sub = argparse.ArgumentParser().add_subparsers()
        getattr(importlib.import_module(module), add)(sub)
        assert [a.help for a in sub._choices_actions] == [cli.EXTRA_HELP[name]], name
    code = ("import sys; from sigreg_core.cli import main; rc = main(['--help']); "
            "print('torch' in sys.modules, 'pandas' in sys.modules, rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False False 0"
    for name in cli.EXTRA_COMMANDS:
        assert name in out


def test_internal_error_exit_3_one_line(files, capsys, monkeypatch):
    import importlib

    # the package re-exports the function assess, which shadows the submodule attribute
    assess_module = importlib.import_module("sigreg_core.assessment.assess")

    def broken(*_a, **_k):
        raise RuntimeError("kernel exploded\nwith detail")

    monkeypatch.setattr(assess_module, "assess", broken)
    code, out, err = run(["score", files["dir"] / "healthy.npy", *FAST], capsys)
    assert code == 3 and out == ""
    line = one_line(err)
    assert "internal error: RuntimeError: kernel exploded with detail" in line and "SIGREG_DEBUG" in line


# ----------------------------------------------------------------------------- progress bar


def test_progress_bar_only_on_a_tty(files, capsys, monkeypatch):
    code, _out, err = run(["score", files["dir"] / "healthy.npy", *FAST], capsys)
    assert code == 0 and err == ""  # not a TTY: no bar
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    code, _out, err = run(["score", files["dir"] / "healthy.npy", *FAST], capsys)
    assert code == 0 and "healthy.npy" in err and "%|" in err  # the tqdm bar
    code, _out, err = run(["score", files["dir"] / "healthy.npy", "--quiet", *FAST], capsys)
    assert code == 0 and err == ""


# ----------------------------------------------------------------------------- app


def test_app_missing_exits_2(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "app_path", lambda: tmp_path / "app.py")
    code, out, err = run(["app"], capsys)
    assert code == 2 and out == ""
    assert "is missing" in one_line(err)


def test_app_runs_streamlit_on_the_repo_app(capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "app_path", lambda: ROOT / "pyproject.toml")  # any existing file stands in
    import os
    import subprocess as sp

    def execv(exe, cmd):  # the process would become Streamlit here: stop as its exit would
        calls.append(cmd)
        raise SystemExit(0)

    monkeypatch.setattr(os, "execv", execv)
    monkeypatch.setattr(sp, "call", lambda cmd: calls.append(cmd) or 0)
    code, _out, _err = run(["app", "--port", "8765", "--address", "127.0.0.1", "--", "--server.headless", "true"], capsys)
    assert code == 0
    assert calls == [[sys.executable, "-m", "streamlit", "run", str(ROOT / "pyproject.toml"), "--server.port", "8765",
                      "--server.address", "127.0.0.1", "--server.headless", "true"]]


def test_app_path_is_the_repository_app():
    assert cli.app_path() == ROOT / "app.py"


@pytest.mark.slow
def test_app_serves(tmp_path):
    """``python -m sigreg_core app`` really starts Streamlit: its health endpoint answers."""
    import socket
    import time
    import urllib.request

    if not (ROOT / "app.py").is_file():
        pytest.skip("app.py not written yet")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sigreg_core", "app", "--port", str(port), "--address", "127.0.0.1", "--",
         "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 90
        body = b""
        while time.time() < deadline:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read()
                break
            except OSError:
                time.sleep(0.5)
        assert body == b"ok"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # terminating `sigreg app` stops the server itself (it was left running, orphaned, as a child)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
        except OSError:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the server on port {port} still answers after `sigreg app` was terminated")


# ----------------------------------------------------------------------------- real processes


def _python_m(args, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return subprocess.run([sys.executable, "-m", "sigreg_core", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300, **kw)


def test_python_m_exit_codes_in_a_real_process(files):
    d = files["dir"]
    gate = _python_m(["score", d / "healthy.npy", d / "collapsed.npy", "--json", "--fail-on", "collapsed", *FAST])
    assert gate.returncode == 1 and gate.stderr == "", gate.stderr
    assert [r["verdict"] for r in json.loads(gate.stdout)] == ["healthy", "collapsed"]
    bad = _python_m(["score", d / "evil.pt", *FAST])
    assert bad.returncode == 2 and bad.stdout == ""
    assert "refused" in one_line(bad.stderr)
    assert not files["marker"].exists()


# ----------------------------------------------------------------------------- torchrun


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.distributed
def test_distributed_two_gloo_processes_equal_the_concatenation(tmp_path, capsys):
    rng = np.random.default_rng(5)
    z = rng.standard_normal((3, 400, 12)).astype(np.float32)
    z[..., 0] = rng.standard_t(3, size=(3, 400))  # something to detect
    shards = []
    for i, rows in enumerate([(0, 150), (150, 250), (250, 330), (330, 400)]):  # unequal shards, 2 per rank
        p = tmp_path / f"shard{i}.npy"
        np.save(p, z[:, rows[0]:rows[1]])
        shards.append(p)
    # rank 0 gets shards 0 and 2, rank 1 gets 1 and 3: the global batch is their union
    whole = tmp_path / "whole.npy"
    np.save(whole, z)
    code, single_out, _ = run(["score", whole, "--json", *FAST], capsys)  # in-process single-rank reference
    assert code == 0
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), "-m", "sigreg_core", "score", "--distributed", "--json", *FAST,
           *map(str, shards)]
    multi = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert multi.returncode == 0, multi.stderr[-3000:]
    a = json.loads(single_out)
    b = json.loads(multi.stdout)  # only rank 0 prints
    assert len(a) == 1 and len(b) == 1
    a, b = a[0], b[0]
    assert b["world_size"] == 2 and b["rows"] == a["rows"] == 400 and b["num_views"] == 3
    assert b["config"]["distributed"] is True or b["views"][0]["config"]["distributed"] is True
    # the same rows, summed in another order: equal up to the float32 rounding of the projections
    for k in ("sigreg", "null_mean", "sigreg_over_null"):
        assert b[k] == pytest.approx(a[k], rel=1e-6), k
    assert b["log10_p_value"] == pytest.approx(a["log10_p_value"], rel=1e-4, abs=1e-6)
    assert b["verdict"] == a["verdict"] and b["modes"] == a["modes"]
    # one view's slices (the deciding view), not a mean over views: float32 rounding shows at 1e-5
    np.testing.assert_allclose(b["per_slice"]["statistic"], a["per_slice"]["statistic"], rtol=5e-5, atol=1e-6)
    for va, vb in zip(a["views"], b["views"]):
        assert vb["sigreg"] == pytest.approx(va["sigreg"], rel=1e-6)
    # and not merely the local half: rank 0 alone (shards 0 and 2) scores differently
    half = tmp_path / "half.npy"
    np.save(half, np.concatenate([z[:, 0:150], z[:, 250:330]], axis=1))
    local = json.loads(run(["score", half, "--json", *FAST], capsys)[1])[0]
    assert abs(local["sigreg"] - a["sigreg"]) > 1e-3


@pytest.mark.distributed
def test_distributed_bad_shard_exits_2_on_every_rank(tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32))
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not an array")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), "-m", "sigreg_core", "score", "--distributed", *FAST, good, bad]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert res.returncode != 0
    assert res.stderr.count("bad.npy: is not a valid .npy array") == 1
