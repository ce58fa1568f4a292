"""Crash safety of RunWriter: SIGKILL at random moments, and a reader polling a live writer.

A step the writer reported written (it prints the step only after ``log`` returned,
i.e. after the snapshot was fsynced and renamed and the index row committed) must be
readable after any kill, the index must pass SQLite's integrity check, and every
snapshot file that is visible (not a temporary ``.name.tmp-PID``) must load and hold
exactly the data of its step.
"""
from __future__ import annotations

import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ROWS, DIM = 1024, 64  # 256 KiB snapshots: writes take long enough to be interrupted mid-way

WRITER = textwrap.dedent(
    """
    import sys, torch
    torch.set_num_threads(1)
    from sigreg_core.runs import RunWriter

    import time
    run_dir, start, keep_last, summary = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
    pause = float(sys.argv[5])
    keep_last = None if keep_last == "none" else int(keep_last)
    w = RunWriter(run_dir, max_rows=None, keep_last=keep_last, summary=summary, num_slices=16)
    print("ready", flush=True)
    step = start
    while True:
        g = torch.Generator().manual_seed(step)
        z = torch.randn(%d, %d, generator=g)
        if w.log(step, z, loss=float(step)) and not pause:
            print(step, flush=True)
        step += 1
        time.sleep(pause)
    """ % (ROWS, DIM)
)


def expected(step: int) -> np.ndarray:
    import torch

    g = torch.Generator().manual_seed(step)
    return torch.randn(ROWS, DIM, generator=g).numpy()


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def check_run(run_dir: Path, reported: set, check_data: bool = True) -> set:
    """Everything visible is complete; every reported step is there. Returns the index's steps."""
    from safetensors.numpy import load_file

    from sigreg_core.runs import RunReader

    con = sqlite3.connect(str(run_dir / "index.sqlite"))
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()
    r = RunReader(run_dir)
    ts = r.timeseries()
    steps = set(int(s) for s in ts["step"])
    missing = reported - steps
    assert not missing, f"steps reported written but not in the index: {sorted(missing)[:5]}"
    for s, snap in zip(ts["step"], ts["snapshot"]):
        if not isinstance(snap, str):
            continue  # dropped by retention
        z = r.snapshot(int(s))
        assert z.shape == (ROWS, DIM)
        if check_data:
            np.testing.assert_array_equal(z, expected(int(s)))
    for p in (run_dir / "snapshots").iterdir():
        if p.name.startswith("."):
            continue  # a temporary file of the killed writer (never referenced, removed on reopen)
        z = load_file(str(p))["embeddings"]  # an orphan from a kill between rename and commit is complete too
        step = int(p.stem.split("_")[1])
        if check_data:
            np.testing.assert_array_equal(z, expected(step))
    return steps


def _spawn(run_dir: Path, start: int, keep_last="none", summary=False, pause=0.0):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(run_dir), str(start), str(keep_last),
                             "1" if summary else "0", str(pause)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=str(ROOT))


def _read_lines(proc, until: float, max_lines: int = 1 << 30) -> list:
    out = []
    while time.monotonic() < until and len(out) < max_lines:
        r, _, _ = select.select([proc.stdout], [], [], max(0.0, until - time.monotonic()))
        if not r:
            break
        line = proc.stdout.readline()
        if not line:
            break
        out.append(line.strip())
    return out


def _kill_loop(run_dir: Path, kills: int, rng: random.Random, keep_last="none", summary=False):
    """Start the writer, let it write for a random moment, SIGKILL it, check; ``kills`` times."""
    reported: set = set()
    next_step = 0
    for i in range(kills):
        proc = _spawn(run_dir, next_step, keep_last, summary)
        try:
            lines = _read_lines(proc, time.monotonic() + 120, 1)
            assert lines == ["ready"], proc.stderr.read() if proc.poll() is not None else lines
            # random moment inside the write loop: anywhere from mid-first-write to a few steps in
            lines = _read_lines(proc, time.monotonic() + rng.uniform(0.0, 0.08))
        finally:
            proc.send_signal(signal.SIGKILL)
            rest, err = proc.communicate(timeout=30)
        lines += [s for s in rest.split() if s]  # printed before the kill landed
        new = {int(s) for s in lines if s.isdigit()}
        reported |= new
        steps = check_run(run_dir, reported)
        next_step = max(steps | reported | {next_step - 1}) + 1
    return reported


@pytest.mark.slow
def test_sigkill_at_random_moments_subprocess(tmp_path):
    """50 kills of a real writer process (one interpreter each: slow, runs in CI)."""
    reported = _kill_loop(tmp_path / "run", 50, random.Random(7))
    assert len(reported) > 0


def test_sigkill_at_random_moments_forked(tmp_path):
    """60 SIGKILLs of a forked writer at random moments (fast: no interpreter start-up)."""
    import torch

    from sigreg_core.runs import RunWriter

    run_dir = tmp_path / "run"
    rng = random.Random(11)
    reported: set = set()
    next_step = 0
    kills_mid_write = 0
    for i in range(60):
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: write steps until killed
            try:
                os.close(rfd)
                torch.set_num_threads(1)
                keep_last = 4 if i % 3 == 0 else None  # retention in a third of the rounds
                w = RunWriter(run_dir, max_rows=None, keep_last=keep_last, summary=False)
                os.write(wfd, b"ready\n")
                step = next_step
                while True:
                    g = torch.Generator().manual_seed(step)
                    if w.log(step, torch.randn(ROWS, DIM, generator=g), loss=float(step)):
                        os.write(wfd, f"{step}\n".encode())
                    step += 1
            finally:
                os._exit(1)
        os.close(wfd)
        buf = b""
        deadline = time.monotonic() + 60
        while b"ready\n" not in buf and time.monotonic() < deadline:
            r, _, _ = select.select([rfd], [], [], 1.0)
            if r:
                chunk = os.read(rfd, 4096)
                if not chunk:
                    break
                buf += chunk
        assert b"ready\n" in buf, "forked writer did not start"
        time.sleep(rng.uniform(0.0, 0.06))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        while True:
            chunk = os.read(rfd, 4096)
            if not chunk:
                break
            buf += chunk
        os.close(rfd)
        new = {int(s) for s in buf.decode().split() if s.isdigit()}
        reported |= new
        if any(p.name.startswith(".") for p in (run_dir / "snapshots").iterdir()):
            kills_mid_write += 1
        steps = check_run(run_dir, reported)
        next_step = max(steps | reported | {next_step - 1}) + 1
    assert len(reported) >= 10
    assert kills_mid_write >= 1, "no kill landed during a snapshot write; the test lost its point"


def test_reader_polling_a_live_writer_sees_only_complete_snapshots(tmp_path):
    from sigreg_core.runs import RunReader, is_run_dir

    run_dir = tmp_path / "run"
    proc = _spawn(run_dir, 0, keep_last=8, summary=False, pause=0.01)
    seen_steps = set()
    loaded = 0
    dropped = 0
    try:
        assert _read_lines(proc, time.monotonic() + 120, 1) == ["ready"]
        t_end = time.monotonic() + 6
        while time.monotonic() < t_end:
            if not is_run_dir(run_dir):
                continue
            r = RunReader(run_dir)
            ts = r.timeseries()
            for s, snap in zip(ts["step"], ts["snapshot"]):
                seen_steps.add(int(s))
                if not isinstance(snap, str):
                    continue
                try:
                    z = r.snapshot(int(s))
                except KeyError:
                    dropped += 1  # retention removed it between reading the index and the file
                    continue
                np.testing.assert_array_equal(z, expected(int(s)))
                loaded += 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert len(seen_steps) >= 5 and loaded >= 5
    check_run(run_dir, set())


# ----------------------------------------------------------------------------- one writer per run
def test_second_writer_in_another_process_is_refused_and_the_lock_dies_with_its_holder(tmp_path):
    """Two writers on one run (as when every DDP rank writes) used to leave rows pointing to
    missing snapshots: the second is refused in one line, a rank-named writer goes beside it,
    and after a SIGKILL of the holder the next writer gets the run (nothing reported is lost)."""
    import torch

    from sigreg_core.runs.writer import RunLockedError, RunWriter

    run_dir = tmp_path / "run"
    proc = _spawn(run_dir, 0)
    try:
        assert _read_lines(proc, time.monotonic() + 120, 1) == ["ready"]
        lines = _read_lines(proc, time.monotonic() + 0.5)
        with pytest.raises(RunLockedError) as info:
            RunWriter(run_dir, max_rows=None, summary=False)
        msg = str(info.value)
        assert "\n" not in msg and "already being written" in msg and f"pid {proc.pid}" in msg and "rank=" in msg
        with RunWriter(run_dir, max_rows=None, summary=False, rank=1) as w1:  # its own folder beside the run
            assert w1.run_dir == tmp_path / "run-rank1"
            assert w1.log(10**9, torch.ones(8, 4))
    finally:
        proc.send_signal(signal.SIGKILL)
        rest, _err = proc.communicate(timeout=30)
    reported = {int(s) for s in lines + rest.split() if s.isdigit()}
    assert reported, "the first writer wrote nothing before the kill"
    steps = check_run(run_dir, reported)
    assert 10**9 not in steps  # the rank-1 row never entered rank 0's index
    with RunWriter(run_dir, max_rows=None, summary=False) as w:  # the kill released the lock
        nxt = max(steps) + 1
        assert w.log(nxt, torch.from_numpy(expected(nxt)))
    check_run(run_dir, reported | {nxt})
    from sigreg_core.runs import RunReader

    assert list(RunReader(tmp_path / "run-rank1").timeseries()["step"]) == [10**9]


def test_second_writer_in_the_same_process_is_refused_until_the_first_closes(tmp_path):
    import torch

    from sigreg_core.runs.writer import RunLockedError, RunWriter

    w = RunWriter(tmp_path / "run", max_rows=None, summary=False)
    assert w.log(0, torch.ones(4, 3))
    with pytest.raises(RunLockedError):
        RunWriter(tmp_path / "run", max_rows=None, summary=False)
    w.close()
    with RunWriter(tmp_path / "run", max_rows=None, summary=False) as w2:
        assert w2.log(1, torch.ones(4, 3))
    with pytest.raises(ValueError):
        RunWriter(tmp_path / "run", rank=-1)


def test_two_writers_racing_on_one_run_leave_one_consistent_index(tmp_path):
    """Two processes started together on one run: exactly one writes, the other is refused; the
    index never holds a row whose snapshot is missing or holds another writer's data."""
    run_dir = tmp_path / "run"
    procs = [_spawn(run_dir, start) for start in (0, 100_000)]
    lines = {}
    try:
        for p in procs:
            lines[p.pid] = _read_lines(p, time.monotonic() + 120, 1)
        time.sleep(0.8)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
    outs = [p.communicate(timeout=30) for p in procs]
    refused = [err for (_o, err) in outs if "RunLockedError" in err]
    assert len(refused) == 1, [e[-300:] for _o, e in outs]
    winner = [o for (o, err) in outs if "RunLockedError" not in err][0]
    reported = {int(s) for s in winner.split() if s.isdigit()}
    steps = check_run(run_dir, reported)
    assert steps and (max(steps) < 100_000 or min(steps) >= 100_000)  # one writer's steps only
