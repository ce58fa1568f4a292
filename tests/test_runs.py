"""RunWriter / RunReader: storage, summaries against independent oracles, retention, failures."""
from __future__ import annotations

import errno
import math
import os
import sqlite3
import warnings

import numpy as np
import pytest
import torch

from sigreg_core import runs as R
from sigreg_core.core.directions import sample_directions
from sigreg_core.core.presets import get_preset
from sigreg_core.runs import RunReader, RunWriter, SummaryConfig, step_from_name


def _gauss(n, d, seed):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32))


def _oracle_statistic(z: np.ndarray, a: np.ndarray, preset="lejepa") -> np.ndarray:
    """Per-slice Epps-Pulley statistic in float64, straight from the formula (no streaming, no kernel)."""
    p = get_preset(preset)
    x = z.astype(np.float64) @ a.astype(np.float64)  # (N, M)
    n = x.shape[0]
    out = np.zeros(x.shape[1])
    for t, c in zip(p.nodes, p.weights):
        cr = np.cos(t * x).mean(0)
        ci = np.sin(t * x).mean(0)
        out += c * ((cr - math.exp(-t * t / 2)) ** 2 + ci**2)
    return out * n


def _oracle_rankme(z: np.ndarray) -> float:
    s = np.linalg.svd(z.astype(np.float64), compute_uv=False)
    p = s / s.sum() + 1e-7
    return float(np.exp(-(p * np.log(p)).sum()))


def test_roundtrip_summary_matches_oracles(tmp_path):
    cfg = dict(num_slices=64, seed=3)
    # step 20 collapses: every row near one point (a global rescale alone is a convention, not a collapse)
    data = {s: _gauss(300, 12, s) * (1.0 if s < 20 else 0.01) + (0.0 if s < 20 else 1.0) for s in (0, 10, 20)}
    with RunWriter(tmp_path / "run", every=10, max_rows=200, **cfg) as w:
        for step in range(0, 25):
            if step in data:
                assert w.log(step, data[step], loss=torch.tensor(1.5 - step / 100), lam=0.09, tag="x")
            else:
                assert not w.log(step, data[0])  # not a multiple of every: nothing written
    r = RunReader(tmp_path / "run")
    ts = r.timeseries()
    assert list(ts["step"]) == [0, 10, 20]
    assert {"loss", "lam", "tag"} <= set(ts.attrs["scalar_columns"])
    np.testing.assert_allclose(ts["loss"], [1.5, 1.4, 1.3], rtol=1e-6)
    a = sample_directions(12, 64, 3).numpy()
    for step in (0, 10, 20):
        z = r.snapshot(step)
        assert z.shape == (200, 12) and z.dtype == np.float32
        # the snapshot is a subset of the logged rows, in order (seeded by the step)
        full = data[step].numpy()
        idx = [int(np.flatnonzero((full == row).all(1))[0]) for row in z]
        assert idx == sorted(idx) and len(set(idx)) == 200
        row = ts[ts["step"] == step].iloc[0]
        stat = _oracle_statistic(z, a)
        assert row["sigreg"] == pytest.approx(stat.mean(), rel=1e-4)
        assert row["q50"] == pytest.approx(np.quantile(stat, 0.5), rel=1e-4)
        assert row["q95"] == pytest.approx(np.quantile(stat, 0.95), rel=1e-4)
        assert row["qmax"] == pytest.approx(stat.max(), rel=1e-4)
        assert row["rankme"] == pytest.approx(_oracle_rankme(z), rel=1e-6)
        assert row["null_mean"] == pytest.approx(1.052464, abs=1e-5)
        assert row["sigreg_over_null"] == pytest.approx(row["sigreg"] / row["null_mean"], rel=1e-9)
        assert row["n"] == 200 and row["d"] == 12 and row["m"] == 64
        # same p-value and verdict as a full assessment of the stored snapshot with the same settings
        from sigreg_core.assessment.assess import assess

        ref = assess(z, num_slices=64, seed=3, null_draws=0)
        assert row["p_value"] == pytest.approx(ref.p_value, rel=1e-6)
        assert row["verdict"] == ref.verdict
        assert row["modes"] == ", ".join(ref.modes)
    # healthy data scores healthy, the scaled-down (collapsed) batch does not
    assert ts.iloc[0]["verdict"] == "healthy"
    assert ts.iloc[2]["verdict"] == "collapsed"
    full_summary = r.summary(20)
    assert full_summary["verdict"] == "collapsed" and full_summary["scalars"]["tag"] == "x"
    assert r.meta()["summary"] == {"preset": "lejepa", "num_slices": 64, "seed": 3}


def test_folds_leading_axes_and_accepts_numpy(tmp_path):
    z = np.random.default_rng(0).standard_normal((2, 50, 6)).astype(np.float32)
    with RunWriter(tmp_path, num_slices=16) as w:
        assert w.log(0, z)
        assert w.log(1, z[0].astype(np.float64))
    r = RunReader(tmp_path)
    assert r.snapshot(0).shape == (100, 6)
    np.testing.assert_array_equal(r.snapshot(0), z.reshape(100, 6))
    assert r.snapshot(1).shape == (50, 6)


@pytest.mark.parametrize("keep_every,keep_last,kept", [
    (None, 3, [7, 8, 9]),
    (4, None, [0, 4, 8]),
    (4, 2, [0, 4, 8, 9]),
    (None, None, list(range(10))),
])
def test_retention_keeps_rows_and_chosen_snapshots(tmp_path, keep_every, keep_last, kept):
    with RunWriter(tmp_path, keep_every=keep_every, keep_last=keep_last, summary=False) as w:
        for s in range(10):
            assert w.log(s, _gauss(20, 3, s), loss=float(s))
    r = RunReader(tmp_path)
    ts = r.timeseries()
    assert list(ts["step"]) == list(range(10))  # index rows always kept
    assert list(ts["loss"]) == [float(s) for s in range(10)]
    have = [s for s in range(10) if r.snapshot_path(s) is not None]
    assert have == kept
    files = sorted(p.name for p in (tmp_path / R.SNAPSHOT_DIR).iterdir())
    assert files == [f"step_{s:09d}.safetensors" for s in kept]
    assert ts["snapshot"].notna().sum() == len(kept)
    dropped = next((s for s in range(10) if s not in kept), None)
    if dropped is not None:
        with pytest.raises(KeyError, match="retention"):
            r.snapshot(dropped)


def test_full_disk_does_not_stop_the_loop(tmp_path, monkeypatch):
    real_write = os.write
    full = {"on": False}

    def write(fd, data):
        if full["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)  # the writer's atomic writes go through os.write
    w = RunWriter(tmp_path, num_slices=16)
    trained = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(12):
            full["on"] = 3 <= step < 9
            ok = w.log(step, _gauss(64, 4, step), loss=float(step))
            trained.append(step)  # the training loop goes on whatever log returned
            assert ok == (not full["on"])
    w.close()
    assert trained == list(range(12))
    disk = [c for c in caught if "disk full" in str(c.message) or "No space" in str(c.message)]
    assert len(disk) == 1 and issubclass(disk[0].category, RuntimeWarning)  # warned once
    assert w.failed == 6 and w.written == 6
    r = RunReader(tmp_path)
    assert list(r.timeseries()["step"]) == [0, 1, 2, 9, 10, 11]  # rows only for durable snapshots
    assert not [p for p in (tmp_path / R.SNAPSHOT_DIR).iterdir() if p.name.startswith(".")]  # no temp files
    for s in (0, 1, 2, 9, 10, 11):
        assert r.snapshot(s).shape == (64, 4)


def test_index_errors_and_vanished_directory_do_not_stop_the_loop(tmp_path):
    run = tmp_path / "run"
    w = RunWriter(run, summary=False)
    assert w.log(0, _gauss(10, 3, 0))

    class Broken:
        def __getattr__(self, name):
            raise sqlite3.OperationalError("disk I/O error")

        def __enter__(self):
            raise sqlite3.OperationalError("disk I/O error")

        def __exit__(self, *a):
            return False

        def close(self):
            pass

    w._con = Broken()
    with pytest.warns(RuntimeWarning, match="disk I/O error"):
        assert not w.log(1, _gauss(10, 3, 1))
    assert w.log(2, _gauss(10, 3, 2))  # reconnects on the next call
    import shutil

    shutil.rmtree(run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not w.log(3, _gauss(10, 3, 3))
    w.close()


def test_bad_batch_is_recorded_not_raised(tmp_path):
    z = _gauss(40, 4, 0)
    z[5, 1] = float("nan")
    with RunWriter(tmp_path, num_slices=8) as w:
        with pytest.warns(RuntimeWarning, match="could not summarise step 0"):
            assert w.log(0, z, loss=1.0)
        assert w.log(1, _gauss(40, 4, 1))
    ts = RunReader(tmp_path).timeseries()
    assert "non-finite" in ts.iloc[0]["error"] and math.isnan(ts.iloc[0]["sigreg"])
    assert ts.iloc[1]["verdict"] in ("healthy", "suspicious")


def test_arguments_are_checked_up_front(tmp_path):
    with pytest.raises(ValueError, match="every"):
        RunWriter(tmp_path, every=0)
    with pytest.raises(ValueError, match="max_rows"):
        RunWriter(tmp_path, max_rows=1)
    with pytest.raises(ValueError, match="keep_last"):
        RunWriter(tmp_path, keep_last=0)
    with pytest.raises(ValueError):
        RunWriter(tmp_path, preset="no-such-preset")
    with RunWriter(tmp_path, summary=False) as w:
        with pytest.raises(ValueError, match="shape"):
            w.log(0, torch.zeros(5))
        with pytest.raises(ValueError, match="step"):
            w.log(-1, torch.zeros(5, 2))


def test_resume_appends_and_overwrites_same_step(tmp_path):
    with RunWriter(tmp_path, summary=False) as w:
        w.log(0, _gauss(10, 2, 0), loss=1.0)
        w.log(1, _gauss(10, 2, 1), loss=2.0)
    with RunWriter(tmp_path, summary=False) as w:
        w.log(1, _gauss(10, 2, 5), loss=3.0)
        w.log(2, _gauss(10, 2, 2), loss=4.0)
    r = RunReader(tmp_path)
    assert list(r.timeseries()["loss"]) == [1.0, 3.0, 4.0]
    np.testing.assert_array_equal(r.snapshot(1), _gauss(10, 2, 5).numpy())


def test_closed_run_is_a_single_file_and_opens_read_only(tmp_path):
    with RunWriter(tmp_path, summary=False) as w:
        w.log(0, _gauss(10, 2, 0))
    assert not (tmp_path / "index.sqlite-wal").exists()
    con = sqlite3.connect(str(tmp_path / "index.sqlite"))
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    con.close()
    os.chmod(tmp_path, 0o555)
    try:
        assert list(RunReader(tmp_path).timeseries()["step"]) == [0]
    finally:
        os.chmod(tmp_path, 0o755)


@pytest.mark.parametrize("name,step", [
    ("step_000100.npy", 100), ("emb-1200.pt", 1200), ("epoch3_step450.safetensors", 450),
    ("z.npy", None), (".step_1.npy.tmp-5", None), ("run7.embeddings.npz", 7),
])
def test_step_from_name(name, step):
    assert step_from_name(name) == step


def test_plain_folder_is_scored_and_cached(tmp_path, monkeypatch):
    folder = tmp_path / "exported"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.save(folder / "step_000100.npy", rng.standard_normal((120, 6)).astype(np.float32))
    torch.save(torch.from_numpy(rng.standard_normal((120, 6)).astype(np.float32) * 0.001 + 1.0), folder / "emb-1200.pt")
    from safetensors.numpy import save_file

    save_file({"z": rng.standard_normal((120, 6)).astype(np.float32)}, str(folder / "ckpt_50.safetensors"))
    (folder / "notes.txt").write_text("not a snapshot")
    (folder / "broken_300.npy").write_bytes(b"\x93NUMPY garbage")
    calls = []
    real = R.summarize

    def counting(z, config=SummaryConfig(), **kw):
        calls.append(z.shape)
        return real(z, config, **kw)

    monkeypatch.setattr(R.reader, "summarize", counting)
    cfg = SummaryConfig(num_slices=32)
    r = RunReader(folder, config=cfg, cache_dir=tmp_path / "cache")
    assert r.kind == "folder"
    ts = r.timeseries()
    assert list(ts["step"]) == [50, 100, 300, 1200]
    assert len(calls) == 3  # the broken file is reported, not scored
    assert ts.set_index("step").loc[300, "error"]
    assert ts.set_index("step").loc[1200, "verdict"] == "collapsed"
    a = sample_directions(6, 32, 0).numpy()
    z100 = np.load(folder / "step_000100.npy")
    assert ts.set_index("step").loc[100, "sigreg"] == pytest.approx(_oracle_statistic(z100, a).mean(), rel=1e-4)
    # second read: every summary from the cache
    RunReader(folder, config=cfg, cache_dir=tmp_path / "cache").timeseries()
    assert len(calls) == 3
    # a changed file is scored again; other settings are a different cache entry
    np.save(folder / "step_000100.npy", rng.standard_normal((130, 6)).astype(np.float32))
    ts2 = RunReader(folder, config=cfg, cache_dir=tmp_path / "cache").timeseries()
    assert len(calls) == 4 and ts2.set_index("step").loc[100, "n"] == 130
    RunReader(folder, config=SummaryConfig(num_slices=16), cache_dir=tmp_path / "cache").timeseries()
    assert len(calls) == 7
    np.testing.assert_array_equal(r.snapshot(100), np.load(folder / "step_000100.npy"))
    assert r.snapshot_path(1200).name == "emb-1200.pt"


def test_reader_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a run directory"):
        RunReader(tmp_path)
    with pytest.raises(FileNotFoundError):
        RunReader(tmp_path / "missing")


def test_find_runs(tmp_path):
    with RunWriter(tmp_path / "a" / "run1", summary=False) as w:
        w.log(0, _gauss(5, 2, 0))
    (tmp_path / "b" / "dump").mkdir(parents=True)
    for s in (1, 2):
        np.save(tmp_path / "b" / "dump" / f"step_{s}.npy", np.zeros((3, 2), np.float32))
    (tmp_path / "c").mkdir()
    found = R.find_runs([tmp_path])
    assert found == [(tmp_path / "a" / "run1").resolve(), (tmp_path / "b" / "dump").resolve()]


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(R.CACHE_DIR_ENV, str(tmp_path / "lh-cache"))
    monkeypatch.setenv("LATENT_HEALTH_CACHE", str(tmp_path / "lh-cache"))


def test_null_band_brackets_exact_null_mean(tmp_path):
    r_dir = tmp_path / "run"
    with RunWriter(r_dir, num_slices=32, summary=False) as w:
        w.log(0, _gauss(10, 2, 0))
    r = RunReader(r_dir)
    lo, hi = r.null_band(256, 16, draws=60)
    assert lo < get_preset("lejepa").null_mean() < hi
    assert r.null_band(256, 16, draws=60) == (lo, hi)  # cached


@pytest.mark.slow
def test_null_band_mean_and_coverage():
    """Monte Carlo null of SIGReg: mean equals the exact null mean; the 95 % band covers ~95 % of fresh draws."""
    cfg = SummaryConfig(num_slices=64, seed=1)
    draws = R.sigreg_null_draws(256, 16, cfg, draws=400, seed=1)
    exact = get_preset("lejepa").null_mean()
    assert draws.mean() == pytest.approx(exact, abs=4 * draws.std() / math.sqrt(draws.size))
    lo, hi = np.quantile(draws, [0.025, 0.975])
    fresh = R.sigreg_null_draws(256, 16, cfg, draws=400, seed=2)
    cover = np.mean((fresh >= lo) & (fresh <= hi))
    assert 0.91 <= cover <= 0.99


def test_resolve_run_dir_is_confined_to_allowed_roots(tmp_path):
    from sigreg_core.inputs.loading import EmbeddingLoadError

    root = tmp_path / "root"
    with RunWriter(root / "r", summary=False) as w:
        w.log(0, _gauss(5, 2, 0))
    outside = tmp_path / "outside"
    with RunWriter(outside, summary=False) as w:
        w.log(0, _gauss(5, 2, 0))
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "empty").mkdir()
    assert R.resolve_run_dir("r", [root]) == (root / "r").resolve()
    assert R.resolve_run_dir(str(root / "r"), [root]) == (root / "r").resolve()
    for bad, msg in [("../outside", "'..'"), ("escape", "outside the allowed"), (str(outside), "outside the allowed"),
                     ("empty", "neither a run directory"), ("nope", "not found"), ("", "empty"),
                     ("r/index.sqlite", "not a directory")]:
        with pytest.raises(EmbeddingLoadError, match=msg):
            R.resolve_run_dir(bad, [root])


def test_run_version_changes_with_new_steps(tmp_path):
    w = RunWriter(tmp_path, summary=False)
    w.log(0, _gauss(5, 2, 0))
    v0 = R.run_version(tmp_path)
    w.log(1, _gauss(5, 2, 1))
    assert R.run_version(tmp_path) != v0
    w.close()
