"""One CUDA + AMP training step of HyVIC on a generated HySpecNet-11k tree (used by ``benchmarks/gpu_check.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer
from rsim.hyvic.data.datamodule import HyperspectralDataModule
from rsim.hyvic.data.testing import write_hyspecnet_fixture
from rsim.hyvic.tasks import HyVICTask


def run(tmp: Path, accelerator: str = "cuda", precision: Any = "16-mixed", small: bool = False) -> float:
    """Train one step on 202-band 64² crops (main + aux optimisers, on-device flips) and return the loss."""
    root = write_hyspecnet_fixture(tmp / "hyspecnet", tiles=2, patches_per_tile=2, size=32 if small else 64)
    data = HyperspectralDataModule(dataset="hyspecnet", root=str(root), crop_size=32 if small else 64, batch_size=2)
    width = 16 if small else 64
    config = {"in_channels": 202, "num_stages": 2, "width": width, "latent_channels": width, "hyper_channels": width}
    task = HyVICTask(model_config=config)
    trainer = Trainer(
        accelerator=accelerator, devices=1, precision=precision, max_steps=1, limit_val_batches=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp,
    )  # fmt: skip
    trainer.fit(task, data)
    return float(trainer.callback_metrics["train/loss"])
