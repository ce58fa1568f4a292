"""A Lightning DDP fit (gloo, 2 CPU processes) with the latent-health callback; run by test_integrations_lightning.

Usage: python tests/lightning_ddp_job.py OUT_DIR.  Lightning's ``ddp`` strategy re-runs this
script for rank 1, so it must be a script (not a pytest function).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

STEPS, EVERY, BATCH, DIM = 8, 2, 32, 6


class Tiny(__import__("lightning").pytorch.LightningModule):
    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(DIM, 4)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        z = self.enc(x)
        loss = (z - x[:, :4]).pow(2).mean()
        self.log("train_loss", loss)
        return {"loss": loss, "embeddings": z}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


class RecordingSink:
    """Appends '<pid> <step>' per call: a duplicate write would show as a repeated step."""

    def __init__(self, path):
        self.path = path

    def log_step(self, record):
        with open(self.path, "a") as f:
            f.write(f"{os.getpid()} {record.step} {record.summary['n']}\n")


def uneven(trainer, pl_module, outputs, batch):
    """Rank 0 contributes 32 rows, rank 1 24 and, at step 4, none at all (gather must not hang)."""
    z = outputs["embeddings"]
    if trainer.global_rank == 1 and trainer.global_step == 4:
        return None
    return z[: BATCH - 8 * trainer.global_rank]


def main(out: Path) -> None:
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    from sigreg_core.integrations.lightning import LatentHealthCallback

    torch.set_num_threads(1)
    pl.seed_everything(0, workers=True)
    x = torch.randn(BATCH * 2 * STEPS, DIM)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=BATCH)
    cb = LatentHealthCallback(out / "run", every=EVERY, gather=True, num_slices=16, max_rows=None,
                              sinks=[RecordingSink(out / "sink.txt")], embeddings_fn=uneven)
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=STEPS,
                         logger=CSVLogger(out, name="csv"),
                         callbacks=[cb], enable_progress_bar=False, enable_checkpointing=False,
                         enable_model_summary=False, log_every_n_steps=1)
    trainer.fit(Tiny(), loader)
    with open(out / f"rank{trainer.global_rank}.done", "w") as f:
        f.write(str(trainer.global_step))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
