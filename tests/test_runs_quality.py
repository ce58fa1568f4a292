"""Quality measures logged per step (issue 22): RunWriter.log(labels=), LiDAR of views, alpha-ReQ, the row
cap, the Lightning callback with a real Trainer, and the Monitor page drawing the curves."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

import sigreg_core.assessment.probes as P
import sigreg_core.runs.step_quality as SQ
from sigreg_core.assessment.alpha_req import fit_range
from sigreg_core.assessment.lidar import lidar
from sigreg_core.runs import RunReader, RunWriter

ROOT = Path(__file__).resolve().parents[1]


def _clusters(n=500, d=12, c=4, sep=3.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((c, d)) * sep
    y = rng.integers(0, c, n)
    return (centres[y] + rng.standard_normal((n, d))).astype(np.float32), y


def _alpha_oracle(z: np.ndarray, k_lo: int, k_hi: int) -> float:
    """alpha-ReQ written differently: float64 SVD of the centred rows, np.polyfit on the log-log range."""
    x = z.astype(np.float64)
    s = np.linalg.svd(x - x.mean(0), compute_uv=False)
    lam = s ** 2 / (len(x) - 1)
    k = np.arange(k_lo, k_hi + 1)
    return -np.polyfit(np.log(k), np.log(lam[k_lo - 1 : k_hi]), 1)[0]


def test_labels_add_both_probes_and_alpha_req_is_always_logged(tmp_path):
    z, y = _clusters()
    with RunWriter(tmp_path / "r", num_slices=16, max_rows=None) as w:
        assert w.log(0, z, labels=y, loss=0.5)
        assert w.log(1, z, loss=0.4)  # no labels: no probes, alpha-ReQ still
    ts = RunReader(tmp_path / "r").timeseries()
    want = P.label_quality(z, y, seed=0)  # the same rows (500 <= the row cap): the same numbers
    assert ts.loc[0, "knn_accuracy"] == pytest.approx(want["knn_accuracy"], abs=0)
    assert ts.loc[0, "linear_probe_accuracy"] == pytest.approx(want["linear_probe_accuracy"], abs=0)
    assert want["knn_accuracy"] > 0.9 and np.isnan(ts.loc[1, "knn_accuracy"])
    lo, hi = fit_range(min(z.shape[0] - 1, z.shape[1]))  # the stated convention: (1, 12) for D = 12
    assert ts.loc[1, "alpha_req"] == pytest.approx(_alpha_oracle(z, int(lo), int(hi)), rel=1e-6)
    assert list(ts["loss"]) == [0.5, 0.4]


def test_views_log_lidar_and_the_probes_use_view_zero(tmp_path):
    z, y = _clusters(300, 8, 3, seed=1)
    rng = np.random.default_rng(2)
    views = np.stack([z, z + 0.3 * rng.standard_normal(z.shape).astype(np.float32)])
    with RunWriter(tmp_path / "v", num_slices=16, max_rows=None) as w:
        w.log(0, torch.from_numpy(views), labels=torch.from_numpy(y))
    ts = RunReader(tmp_path / "v").timeseries()
    assert ts.loc[0, "lidar"] == pytest.approx(lidar(views), rel=1e-9)
    assert ts.loc[0, "knn_accuracy"] == P.label_quality(z, y)["knn_accuracy"]


def test_the_row_cap_bounds_the_probes(monkeypatch):
    z, y = _clusters(3000, 8, 3, seed=3)
    seen = []
    real = P.label_quality

    def spy(x, labels, **kw):
        seen.append((tuple(x.shape), len(labels)))
        return real(x, labels, **kw)

    monkeypatch.setattr(P, "label_quality", spy)
    out = SQ.step_quality(z, y, step=7, max_rows=400)
    assert seen == [((400, 8), 400)] and 0.0 <= out["linear_probe_accuracy"] <= 1.0
    assert set(out) == {"knn_accuracy", "linear_probe_accuracy"}
    # the subsample is seeded by the step, and the labels follow the rows
    idx = SQ._rows(3000, 400, 7).numpy()
    assert out["knn_accuracy"] == real(z[idx], y[idx])["knn_accuracy"]


def test_bad_labels_warn_once_and_the_step_is_still_written(tmp_path):
    z, y = _clusters(200, 6, 3, seed=4)
    with RunWriter(tmp_path / "b", num_slices=16) as w, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert w.log(0, z, labels=y[:-1])
        assert w.log(1, z, labels=np.full(200, np.nan))
    msgs = [str(c.message) for c in caught if "quality" in str(c.message)]
    assert len(msgs) == 1 and "199 values but the embeddings have 200 rows" in msgs[0]
    ts = RunReader(tmp_path / "b").timeseries()
    assert list(ts["step"]) == [0, 1] and "knn_accuracy" not in ts.columns


def test_a_scalar_of_the_same_name_given_by_the_caller_wins(tmp_path):
    z, y = _clusters(200, 6, 3, seed=5)
    with RunWriter(tmp_path / "c", num_slices=16) as w:
        w.log(0, z, labels=y, knn_accuracy=0.123)
    assert RunReader(tmp_path / "c").timeseries().loc[0, "knn_accuracy"] == 0.123


def test_real_lightning_trainer_passes_the_batch_labels(tmp_path):
    import lightning.pytorch as pl  # a dev requirement: never skipped (as in test_integrations_lightning.py)
    from torch import nn

    from sigreg_core.integrations.lightning import LatentHealthCallback

    z, y = _clusters(256, 6, 4, seed=6)

    class Enc(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.enc = nn.Linear(6, 6)

        def training_step(self, batch, batch_idx):
            e = self.enc(batch["x"])
            loss = e.pow(2).mean() * 0.0 + self.enc.weight.sum() * 0.0
            self.log("train_loss", loss)
            return {"loss": loss, "embeddings": e}

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return 256

        def __getitem__(self, i):
            return {"x": torch.from_numpy(z[i]), "labels": int(y[i])}

    loader = torch.utils.data.DataLoader(DS(), batch_size=128)
    runs = {}
    for name, kw in (("key", {}), ("fn", {"labels_key": None, "labels_fn": lambda tr, m, out, b: b["labels"]}),
                     ("off", {"labels_key": None})):
        cb = LatentHealthCallback(tmp_path / name, every=1, num_slices=16, max_rows=None, log_to_trainer=False, **kw)
        trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, callbacks=[cb], enable_progress_bar=False,
                             enable_checkpointing=False, enable_model_summary=False, max_steps=2,
                             default_root_dir=str(tmp_path))
        torch.manual_seed(0)
        model = Enc()
        trainer.fit(model, loader)
        runs[name] = RunReader(tmp_path / name).timeseries()
        if name == "key":
            with torch.no_grad():  # lr = 0: the encoder is fixed, so the step-1 batch's embeddings are known
                e1 = model.enc(torch.from_numpy(z[128:])).numpy()
            assert runs[name].loc[1, "knn_accuracy"] == P.label_quality(e1, y[128:])["knn_accuracy"]
    assert runs["key"]["knn_accuracy"].notna().all() and runs["fn"]["linear_probe_accuracy"].notna().all()
    assert list(runs["key"]["knn_accuracy"]) == list(runs["fn"]["knn_accuracy"])
    assert "knn_accuracy" not in runs["off"].columns and runs["off"]["alpha_req"].notna().all()


SHELL = '''
import streamlit as st
from sigreg_core.present.report import Settings
pages = [st.Page("pages/monitor.py", title="Monitor", default=True), st.Page("pages/inspect.py", title="Inspect")]
page = st.navigation(pages)
st.session_state["lh_settings"] = Settings(num_slices=32)
st.session_state["_lh_shell"] = True
page.run()
'''


def test_monitor_draws_the_probe_curves_when_logged(tmp_path, monkeypatch):
    d = tmp_path / "shell"
    d.mkdir()
    (d / "pages").symlink_to(ROOT / "pages", target_is_directory=True)
    (d / "app_shell.py").write_text(SHELL)
    monkeypatch.setenv("LATENT_HEALTH_CACHE", str(tmp_path / "cache"))
    roots = tmp_path / "runs"
    monkeypatch.setenv("LATENT_HEALTH_ALLOWED_ROOTS", str(roots))
    z, y = _clusters(200, 6, 3, seed=7)
    rng = np.random.default_rng(8)
    with RunWriter(roots / "probed", num_slices=16) as w:
        for s in range(3):
            w.log(s, z + s * rng.standard_normal(z.shape).astype(np.float32), labels=y, loss=1.0 / (s + 1))
    want = RunReader(roots / "probed").timeseries()
    at = AppTest.from_file(str(d / "app_shell.py"), default_timeout=240)
    at.session_state["mon_runs"] = [str((roots / "probed").resolve())]
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    chosen = at.multiselect(key="mon_scalars").value
    assert {"loss", "knn_accuracy", "linear_probe_accuracy"} <= set(chosen)
    assert "alpha_req" in at.multiselect(key="mon_scalars").options
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    for col in ("knn_accuracy", "linear_probe_accuracy"):
        # the Monitor's stacked figure: one panel per scalar, its curve named "<run>: <column>"
        ys = [tr.get("y") for ch in charts for tr in ch.get("data", [])
              if col in json.dumps(ch.get("layout", {})) and tr.get("name") == f"probed: {col}"]
        assert ys, f"no chart of {col}"
        vals = ys[0]
        if isinstance(vals, dict):  # plotly's typed array
            import base64

            vals = np.frombuffer(base64.b64decode(vals["bdata"]), dtype=np.dtype(vals["dtype"]))
        assert np.allclose(np.asarray(vals, float), want[col].to_numpy())
