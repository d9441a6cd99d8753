"""Multi-label classification: the reBEN baseline recipe, reused for training and linear probes."""

from __future__ import annotations

import math
import os
from typing import Any

import timm
import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_info
from rsim.core.metrics import multilabel_metrics
from rsim.core.weights import read_state_dict
from torch import Tensor, nn


def warmup_cosine_schedule(warmup_steps: int, total_steps: int, min_factor: float = 0.0) -> Any:
    """LR factor: linear warm-up from 0 to 1 over ``warmup_steps``, then cosine decay to ``min_factor``."""

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load weights from a local ``.safetensors`` file or a torch checkpoint (wrappers unwrapped, groups kept)."""
    return read_state_dict(path, nested=True)


class MultiLabelClassificationTask(LightningModule):
    """timm backbone + BCE-with-logits, AdamW, linear warm-up then cosine; logs mAP and F1 (micro, macro).

    Defaults follow the reBEN baseline recipe (AdamW lr 1e-3, wd 0.01, 1000 warm-up steps, dropout 0.15,
    drop-path 0.15, ResNet-50). Batches are ``{"image": (B, C, H, W), "label": (B, K)}``.

    Args:
        backbone: timm model name (created with ``pretrained=False``; nothing is downloaded).
        in_channels: Input channels; must equal the data module's ``num_channels``.
        num_classes: Number of labels.
        lr: Peak learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: Linear warm-up steps.
        drop_rate: Dropout before the classifier [code: reBEN model cards use 0.15; its CLI default is 0.375].
        drop_path_rate: Stochastic depth (for backbones that support it).
        weights: Local weights file (safetensors or torch) to initialise the backbone; a classifier of another
            shape is skipped.
        freeze_backbone: Linear probe: train only the classifier.
        backbone_kwargs: Extra keyword arguments for ``timm.create_model``.
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        in_channels: int = 10,
        num_classes: int = 19,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_steps: int = 1000,
        drop_rate: float = 0.15,
        drop_path_rate: float = 0.15,
        weights: str | None = None,
        freeze_backbone: bool = False,
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        kwargs = dict(backbone_kwargs or {})
        if drop_path_rate > 0:
            kwargs.setdefault("drop_path_rate", drop_path_rate)
        self.model: nn.Module = timm.create_model(
            backbone,
            pretrained=False,
            in_chans=in_channels,
            num_classes=num_classes,
            drop_rate=drop_rate,
            **kwargs,
        )
        if weights is not None:
            self.load_backbone_weights(weights)
        if freeze_backbone:
            classifier = self.model.get_classifier()  # type: ignore[operator]
            head = {id(p) for p in classifier.parameters()}
            for p in self.model.parameters():
                p.requires_grad = id(p) in head
        self.loss = nn.BCEWithLogitsLoss()
        self.val_metrics = multilabel_metrics(num_classes, prefix="val/")
        self.test_metrics = multilabel_metrics(num_classes, prefix="test/")

    def load_backbone_weights(self, path: str) -> None:
        """Load local weights, skipping tensors whose shape differs (e.g. another classifier)."""
        state = load_state_dict_file(path)
        own = self.model.state_dict()
        compatible = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        missing = [k for k in own if k not in compatible]
        if not compatible:
            raise ValueError(f"{path}: no tensor matches the {self.hparams['backbone']} state dict")
        self.model.load_state_dict(compatible, strict=False)
        if missing:
            rank_zero_info(f"{path}: {len(missing)} tensors kept at their initial values ({missing[:4]}...)")

    def setup(self, stage: str) -> None:  # noqa: D102
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        channels = getattr(datamodule, "num_channels", None)
        if channels is not None and channels != self.hparams["in_channels"]:
            raise ValueError(
                f"model.in_channels={self.hparams['in_channels']} but the data module yields {channels} channels "
                f"({getattr(datamodule, 'band_order', '?')}); set model.init_args.in_channels: {channels}"
            )

    def forward(self, x: Tensor) -> Tensor:
        """Return logits of shape ``(B, num_classes)``."""
        return self.model(x)

    def features(self, x: Tensor) -> Tensor:
        """Pooled pre-classifier features, for probes and retrieval."""
        feats = self.model.forward_features(x)  # type: ignore[operator]
        return self.model.forward_head(feats, pre_logits=True)  # type: ignore[operator]

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:  # noqa: D102
        loss = self.loss(self(batch["image"]), batch["label"])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["label"].shape[0])
        return loss

    def _eval_step(self, batch: dict[str, Tensor], metrics: Any, stage: str) -> None:
        logits = self(batch["image"])
        loss = self.loss(logits, batch["label"])
        metrics.update(logits, batch["label"].int())
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=batch["label"].shape[0])

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:  # noqa: D102
        self._eval_step(batch, self.val_metrics, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:  # noqa: D102
        self._eval_step(batch, self.test_metrics, "test")

    def on_validation_epoch_end(self) -> None:  # noqa: D102
        self.log_dict(self.val_metrics.compute(), prog_bar=True)
        self.val_metrics.reset()

    def on_test_epoch_end(self) -> None:  # noqa: D102
        self.log_dict(self.test_metrics.compute())
        self.test_metrics.reset()

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:  # noqa: D102
        return {"probabilities": torch.sigmoid(self(batch["image"])), "index": batch["index"]}

    def configure_optimizers(self) -> Any:  # noqa: D102
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"])
        total = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 10_000
        warmup = min(self.hparams["warmup_steps"], total)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine_schedule(warmup, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
