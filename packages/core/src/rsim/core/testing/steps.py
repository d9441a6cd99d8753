"""One-step training runs used by ``benchmarks/gpu_check.py`` and the packages' ``gpu_check`` modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule, Trainer


def fit_one_step(
    task: LightningModule,
    data: LightningDataModule,
    tmp: Path,
    *,
    accelerator: str = "cuda",
    precision: Any = "16-mixed",
    loss_key: str = "train/loss",
) -> float:
    """Run exactly one optimisation step (device transforms included) and return the logged training loss.

    Raises:
        KeyError: The task did not log ``loss_key``.
    """
    trainer = Trainer(
        accelerator=accelerator, devices=1, precision=precision, max_steps=1, limit_val_batches=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp,
    )  # fmt: skip
    trainer.fit(task, data)
    if loss_key not in trainer.callback_metrics:
        raise KeyError(f"{type(task).__name__} logged no {loss_key!r}; it logged {sorted(trainer.callback_metrics)}")
    return float(trainer.callback_metrics[loss_key])
