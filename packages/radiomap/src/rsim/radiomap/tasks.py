"""LightningModule: RadioNet256to32 trained with a masked MSE on the grey scale; RMSE reported in dB (× 59)."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule
from rsim.core.metrics import MaskedRegressionMetrics
from rsim.radiomap.data.layout import PL_RANGE
from rsim.radiomap.models.radionet import RadioNet256to32
from torch import Tensor

__all__ = ["RadioMapTask", "masked_mse"]


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor, obs: Tensor | None = None, alpha: float = 1.0) -> Tensor:
    """``α·MSE(valid pixels) + (1−α)·MSE(observed pixels)`` on the [0, 1] grey scale (α = 1 by default)."""
    err = (pred - target) ** 2
    full = (err * mask).sum() / mask.sum().clamp_min(1)
    if alpha == 1.0 or obs is None:
        return full
    part = (err * obs).sum() / obs.sum().clamp_min(1)
    return alpha * full + (1.0 - alpha) * part


class RadioMapTask(LightningModule):
    """Radio-map regression.

    Args:
        in_channels: Model input channels (see :func:`rsim.radiomap.data.input_channels`; 32 by default).
        width_mult: RadioNet width multiplier (1.0 = published checkpoints).
        lr: Adam learning rate.
        lr_factor: ReduceLROnPlateau factor.
        lr_patience: ReduceLROnPlateau patience (epochs).
        lr_threshold: ReduceLROnPlateau threshold.
        min_lr: ReduceLROnPlateau minimum learning rate.
        alpha: Weight of the full-map loss vs. the observed-pixel loss.
        weights: Optional converted ``.safetensors`` (or original checkpoint) to start from (width 1.0 only).
        init: Weight initialisation of a model trained from scratch: ``kaiming`` (He-normal, default) or ``torch``
            (PyTorch layer defaults as in the original code; a short run then only learns a constant map).
    """

    def __init__(
        self,
        in_channels: int = 32,
        width_mult: float = 1.0,
        lr: float = 1e-4,
        lr_factor: float = 0.2,
        lr_patience: int = 10,
        lr_threshold: float = 5e-5,
        min_lr: float = 1e-6,
        alpha: float = 1.0,
        weights: str | None = None,
        init: str = "kaiming",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = RadioNet256to32(inputs=in_channels, width_mult=width_mult, init=init)
        if weights is not None:
            from rsim.radiomap.models.convert import load_weights

            self.model.load_state_dict(load_weights(weights).state_dict())
        self.val_metrics = MaskedRegressionMetrics()
        self.test_metrics = MaskedRegressionMetrics()

    def forward(self, x: Tensor) -> Tensor:
        """Grey-scale prediction ``[B, 1, H/8, W/8]``."""
        return self.model(x)

    def _step(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        pred = self(batch["input"])
        loss = masked_mse(pred, batch["target"], batch["mask"], batch["obs"], self.hparams["alpha"])
        return pred, loss

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:  # noqa: D102
        _, loss = self._step(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["input"]))
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:  # noqa: D102
        pred, loss = self._step(batch)
        self.log("val/loss", loss, prog_bar=True, batch_size=len(batch["input"]))
        self.val_metrics.update(pred.float() * PL_RANGE, batch["target"] * PL_RANGE, batch["mask"])

    def on_validation_epoch_end(self) -> None:  # noqa: D102
        self.log("val/rmse_db", self.val_metrics.compute()["rmse"])
        self.val_metrics.reset()

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:  # noqa: D102
        pred, loss = self._step(batch)
        self.log("test/loss", loss, batch_size=len(batch["input"]))
        self.test_metrics.update(pred.float() * PL_RANGE, batch["target"] * PL_RANGE, batch["mask"])

    def on_test_epoch_end(self) -> None:  # noqa: D102
        out = self.test_metrics.compute()
        self.log("test/rmse_db", out["rmse"])
        self.log("test/mae_db", out["mae"])
        self.test_metrics.reset()

    def configure_optimizers(self) -> Any:  # noqa: D102
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams["lr"])
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=self.hparams["lr_factor"],
                                                           patience=self.hparams["lr_patience"],
                                                           threshold=self.hparams["lr_threshold"],
                                                           min_lr=self.hparams["min_lr"])  # fmt: skip
        trainer = self._trainer
        monitor = "val/loss" if trainer is not None and trainer.limit_val_batches != 0 else "train/loss"
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": monitor}}
