"""LightningModule for joint bathymetry regression and seabed segmentation with Seabed-Net (and its baselines)."""

from __future__ import annotations

import warnings
from typing import Any, Literal

import lightning as L
import torch
from rsim.core.metrics import MaskedRegressionMetrics, SegmentationMetrics
from rsim.seabednet.losses import TaskWeighting, masked_ce, masked_rmse
from rsim.seabednet.models.convert import load_converted
from rsim.seabednet.models.seabednet import SeabedNet
from rsim.seabednet.models.unet import SingleTaskUNet, UNetBathy, head_channels, network_heads
from torch import Tensor, nn

__all__ = ["ARCHITECTURES", "SeabedNetTask", "build_network"]

Architecture = Literal["seabednet", "unet_bathy", "unet_bathymetry", "unet_segmentation"]
#: Networks the task trains, with the name used in the `seabednet baselines` table.
ARCHITECTURES: dict[str, str] = {
    "seabednet": "Seabed-Net",
    "unet_bathy": "MagicBathyNet UNet-Bathy",
    "unet_bathymetry": "U-Net (bathymetry only)",
    "unet_segmentation": "U-Net (segmentation only)",
}


def build_network(
    architecture: str,
    in_channels: int,
    features: int,
    num_classes: int,
    *,
    reference_compatible: bool = False,
    input_size: int = 256,
    weights: str | None = None,
) -> nn.Module:
    """Construct (and optionally load) the network of an architecture.

    Args:
        architecture: ``seabednet``, ``unet_bathy`` (MagicBathyNet UNet-Bathy, fixed widths 32-256, ``features``
            ignored), ``unet_bathymetry`` or ``unet_segmentation`` (one Seabed-Net branch of width ``features``).
        in_channels: Image bands.
        features: Width f (Seabed-Net and the single-task U-Nets).
        num_classes: Class logits K including "undefined".
        reference_compatible: Seabed-Net only.
        input_size: Seabed-Net only (positional embeddings).
        weights: ``.safetensors`` to load: a converted original for Seabed-Net, else a state dict with this
            network's key names (strict).

    Raises:
        ValueError: Unknown architecture, or weights that do not fit the configuration (file named).
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; expected one of {sorted(ARCHITECTURES)}")
    if architecture == "seabednet":
        if weights:
            net = load_converted(weights, reference_compatible=reference_compatible, input_size=input_size)
            if net.in_channels != in_channels or net.seg_decoder.out_conv.out_channels != num_classes:
                raise ValueError(f"{weights}: network does not match in_channels/num_classes of the config")
            return net.train()
        return SeabedNet(
            in_channels, features, 1, num_classes, reference_compatible=reference_compatible, input_size=input_size
        )
    model: nn.Module
    if architecture == "unet_bathy":
        model = UNetBathy(in_channels, 1)
    else:
        task = "bathymetry" if architecture == "unet_bathymetry" else "segmentation"
        model = SingleTaskUNet(in_channels, features, task, num_classes)
    if weights:
        from safetensors.torch import load_file

        try:
            model.load_state_dict(load_file(weights))
        except RuntimeError as exc:
            raise ValueError(f"{weights}: state dict does not fit {architecture} ({exc})") from exc
    return model


class SeabedNetTask(L.LightningModule):
    """Seabed-Net training, evaluation and prediction.

    Batches are dicts with ``image [B, C, H, W]`` (normalised), ``depth [B, 1, H, W]`` (normalised positive
    depth), ``label [B, H, W]`` and ``mask [B, 1, H, W]`` (valid depth pixels), as produced by
    ``MagicBathyNetDataModule``.

    Args:
        in_channels: Image bands.
        features: Network width f (paper 64).
        num_classes: Class logits K including "undefined".
        undefined_index: Class ignored by the loss and the metrics.
        depth_scale: Metres per normalised depth unit; ``None`` takes it from the datamodule (site constant).
        reference_compatible: Original computation (for imported weights), see ``SeabedNet``.
        input_size: Training side (sizes the positional embeddings).
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        scheduler: ``cosine`` (over all training steps) or ``none``.
        task_weighting: ``kendall``, ``symmetric`` or ``fixed`` (see ``TaskWeighting``).
        init_log_var: Initial log-variance of both tasks.
        fixed_weights: Task weights for ``fixed``.
        weights: Optional ``.safetensors`` (converted original or our own) to initialise the network from.
        architecture: ``seabednet`` (default), or a single-task baseline trained with the same recipe:
            ``unet_bathy`` (MagicBathyNet UNet-Bathy, depth only, masked RMSE), ``unet_bathymetry`` (Seabed-Net's
            bathymetry branch alone) or ``unet_segmentation`` (its segmentation branch alone, masked CE). A
            single-task network has one loss (no task weighting) and logs only its task's metrics.
    """

    def __init__(
        self,
        in_channels: int = 3,
        features: int = 64,
        num_classes: int = 5,
        undefined_index: int | None = 4,
        depth_scale: float | None = None,
        reference_compatible: bool = False,
        input_size: int = 256,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        scheduler: Literal["cosine", "none"] = "cosine",
        task_weighting: Literal["kendall", "symmetric", "fixed"] = "kendall",
        init_log_var: float = 0.0,
        fixed_weights: tuple[float, float] = (1.0, 1.0),
        weights: str | None = None,
        architecture: Architecture = "seabednet",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = build_network(
            architecture,
            in_channels,
            features,
            num_classes,
            reference_compatible=reference_compatible,
            input_size=input_size,
            weights=weights,
        )
        n_depth, n_classes = head_channels(self.net)
        self.has_depth, self.has_classes = n_depth > 0, n_classes > 0
        # task weighting only for the joint model (a single-task baseline has one loss)
        self.weighting = (
            TaskWeighting(task_weighting, init_log_var, fixed_weights) if self.has_depth and self.has_classes else None
        )
        self._depth_scale = depth_scale
        self.val_reg = MaskedRegressionMetrics()
        self.val_seg = SegmentationMetrics(num_classes, ignore_index=undefined_index)
        self.test_reg = MaskedRegressionMetrics()
        self.test_seg = SegmentationMetrics(num_classes, ignore_index=undefined_index)
        self.norm_param: Tensor | None = None
        self.channel_order = "native"
        self.native_tile: int | None = None
        self.upsample_mode = "nearest"

    @property
    def depth_scale(self) -> float:
        """Metres per normalised depth unit."""
        if self._depth_scale is None:
            dm = self._trainer.datamodule if self._trainer is not None else None  # type: ignore[attr-defined]
            scale = getattr(dm, "depth_scale", None)
            if scale is None:
                warnings.warn("depth_scale unknown (no datamodule); metrics are in target units", stacklevel=2)
                return 1.0
            self._depth_scale = float(scale)
        return float(self._depth_scale)

    def setup(self, stage: str) -> None:
        """Check the datamodule's classes and remember its normalisation for prediction checkpoints."""
        dm = self._trainer.datamodule if self._trainer is not None else None  # type: ignore[attr-defined]
        if dm is None:
            return
        k = getattr(dm, "num_classes", None)
        if k is not None and k != self.hparams["num_classes"]:
            raise ValueError(f"datamodule has {k} classes, model num_classes={self.hparams['num_classes']}")
        u = getattr(dm, "undefined_index", None)
        if u is not None and u != self.hparams["undefined_index"]:
            raise ValueError(f"datamodule undefined_index={u}, model undefined_index={self.hparams['undefined_index']}")
        if getattr(dm, "norm_param", None) is not None:
            self.norm_param = dm.norm_param.clone()
            self.channel_order = dm.hparams.get("channel_order", "native")
        self.native_tile = getattr(dm, "native_tile", None)
        if hasattr(dm, "hparams"):
            self.upsample_mode = dm.hparams.get("upsample_mode", "nearest")
        _ = self.depth_scale

    def forward(self, image: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """Return ``(depth [B, 1, H, W] normalised, logits [B, K, H, W])``; ``None`` for a head the network lacks."""
        return network_heads(self.net, image)

    def _losses(self, batch: dict[str, Any]) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
        bathy, logits = self(batch["image"])
        loss_b = masked_rmse(bathy, batch["depth"], batch["mask"]) if bathy is not None else None
        loss_s = masked_ce(logits, batch["label"], self.hparams["undefined_index"]) if logits is not None else None
        return loss_b, loss_s, bathy, logits

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Weighted multi-task loss (or the single task's loss); logs the task losses and effective weights."""
        loss_b, loss_s, _, _ = self._losses(batch)
        logs: dict[str, Tensor] = {}
        if loss_b is not None:
            logs["train/loss_bathy"] = loss_b.detach()
        if loss_s is not None:
            logs["train/loss_seg"] = loss_s.detach()
        if self.weighting is not None and loss_b is not None and loss_s is not None:
            loss = self.weighting(loss_b, loss_s)
            w = self.weighting.weights()
            logs.update({"train/weight_bathy": w[0], "train/weight_seg": w[1]})
        else:
            single = loss_b if loss_b is not None else loss_s
            assert single is not None  # every architecture has at least one head
            loss = single
        logs["train/loss"] = loss
        self.log_dict(logs, batch_size=batch["image"].shape[0], prog_bar=False)
        return loss

    def _predict_classes(self, logits: Tensor) -> Tensor:
        u = self.hparams["undefined_index"]
        if u is not None:
            logits = logits.clone()
            logits[:, u] = float("-inf")  # "undefined" is never a prediction (it is never a training target)
        return logits.argmax(dim=1)

    def _eval(self, batch: dict[str, Any], prefix: str) -> None:
        loss_b, loss_s, bathy, logits = self._losses(batch)
        reg, seg = (self.val_reg, self.val_seg) if prefix == "val" else (self.test_reg, self.test_seg)
        logs: dict[str, Tensor] = {}
        if bathy is not None and loss_b is not None:
            s = self.depth_scale
            reg.update(bathy * s, batch["depth"] * s, batch["mask"])
            logs[f"{prefix}/loss_bathy"] = loss_b
        if logits is not None and loss_s is not None:
            seg.update(self._predict_classes(logits), batch["label"])
            logs[f"{prefix}/loss_seg"] = loss_s
        self.log_dict(logs, batch_size=batch["image"].shape[0])

    def _log_epoch(self, prefix: str) -> None:
        reg, seg = (self.val_reg, self.val_seg) if prefix == "val" else (self.test_reg, self.test_seg)
        out: dict[str, Tensor] = {}
        if self.has_depth:
            out.update({f"{prefix}/{k}_m": v for k, v in reg.compute().items()})
        if self.has_classes:
            sm = seg.compute()
            out.update({f"{prefix}/{k}": sm[k] for k in ("oa", "f1_macro", "kappa", "miou")})
        self.log_dict(out, prog_bar=prefix == "val")
        reg.reset()
        seg.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Accumulate depth (metres) and segmentation metrics."""
        self._eval(batch, "val")

    def on_validation_epoch_end(self) -> None:
        """Log RMSE/MAE/error std (m), OA, macro F1, kappa, mIoU."""
        self._log_epoch("val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Accumulate test metrics."""
        self._eval(batch, "test")

    def on_test_epoch_end(self) -> None:
        """Log the test metrics."""
        self._log_epoch("test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """Depth in metres (positive down) and class indices (only the heads the network has)."""
        bathy, logits = self(batch["image"])
        out: dict[str, Any] = {"id": batch.get("id")}
        if bathy is not None:
            out["depth_m"] = bathy[:, 0] * self.depth_scale
        if logits is not None:
            out["classes"] = self._predict_classes(logits)
        return out

    def configure_optimizers(self) -> Any:
        """Adam over the network and the task log-variances; optional cosine schedule per step."""
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"])
        if self.hparams["scheduler"] == "none":
            return opt
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store what prediction needs besides the weights (normalisation, depth scale, band order)."""
        checkpoint["seabednet"] = {
            "norm_param": None if self.norm_param is None else self.norm_param.tolist(),
            "depth_scale": self.depth_scale,
            "channel_order": self.channel_order,
            "native_tile": self.native_tile,
            "upsample_mode": self.upsample_mode,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the prediction metadata."""
        meta = checkpoint.get("seabednet", {})
        if meta.get("norm_param") is not None:
            self.norm_param = torch.tensor(meta["norm_param"], dtype=torch.float32)
        if meta.get("depth_scale") is not None:
            self._depth_scale = float(meta["depth_scale"])
        self.channel_order = meta.get("channel_order", "native")
        self.native_tile = meta.get("native_tile")
        self.upsample_mode = meta.get("upsample_mode", "nearest")
