"""Lightning tasks: ResShift / ResShift+EF (residual-shifting diffusion) and the supervised NAFNet-style baseline."""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from rsim.sea_undistort.metrics import RestorationMetrics, lpips_available
from rsim.sea_undistort.models import NAFUNet, ResShift, ResShiftDiffusion, SwinUNet, load_autoencoder
from torch import Tensor, nn


def _warmup_cosine(step: int, warmup: int, total: int, floor: float) -> float:
    """LR factor: linear warm-up to 1, then cosine down to ``floor`` at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class RestorationTask(LightningModule):
    """Shared evaluation: images in [0, 1] from the data module, PSNR-Y/SSIM(/LPIPS) on val and test."""

    def __init__(self, psnr_channel: str = "y", lpips_metric: bool = True) -> None:
        super().__init__()
        self.val_metrics = RestorationMetrics(psnr_channel, lpips=lpips_metric)
        self.test_metrics = RestorationMetrics(psnr_channel, lpips=lpips_metric)
        if self.val_metrics.lpips_skipped_reason not in (None, "disabled"):
            warnings.warn(f"LPIPS skipped: {self.val_metrics.lpips_skipped_reason}", stacklevel=2)

    def restore(self, lq: Tensor, mask: Tensor | None = None) -> Tensor:
        """Restored images in [0, 1] from ``lq`` in [0, 1] (and the glint mask in [0, 1]); subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__} must implement restore()")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: D102
        checkpoint["task_class"] = f"{type(self).__module__}.{type(self).__qualname__}"

    def _evaluate(self, batch: dict[str, Tensor], metrics: RestorationMetrics) -> None:
        metrics.update(self.restore(batch["lq"], batch.get("mask")), batch["gt"])

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:  # noqa: D102
        self._evaluate(batch, self.val_metrics)

    def on_validation_epoch_end(self) -> None:  # noqa: D102
        for name, value in self.val_metrics.compute().items():
            self.log(f"val/{name}", value, prog_bar=name.startswith("psnr"))
        self.val_metrics.reset()

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:  # noqa: D102
        self._evaluate(batch, self.test_metrics)

    def on_test_epoch_end(self) -> None:  # noqa: D102
        for name, value in self.test_metrics.compute().items():
            self.log(f"test/{name}", value)
        self.test_metrics.reset()

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:  # noqa: D102
        return self.restore(batch["lq"], batch.get("mask"))


class ResShiftTask(RestorationTask):
    """ResShift (``early_fusion=False``) or ResShift+EF (``early_fusion=True``) on Sea-Undistort.

    Args:
        early_fusion: Glint mask as the 4th LQ channel [code: ``cond_mask``].
        autoencoder_path: Local VQ-f4 weights (``autoencoder_vq_f4.pth``); ``None``/missing: pixel space.
        autoencoder_config: Extra :class:`VQAutoencoder` options (``scale_factor``, ``quantize_decode``...).
        model_channels: Swin-UNet base width.
        channel_mult: Width multipliers.
        num_res_blocks: Residual blocks per level.
        attention_levels: Downsampling rates with Swin blocks.
        swin_depth: Swin blocks per attention block.
        swin_embed_dim: Swin width.
        window_size: Swin window.
        head_dim: Channels per head.
        lq_widths: LQ feature extractor widths.
        steps: Diffusion steps T.
        kappa: κ.
        min_noise_level: Sets √η_1 = min(min_noise_level/κ, min_noise_level).
        etas_end: √η_T.
        power: Schedule power p.
        lr: Peak AdamW learning rate.
        lr_min: Final cosine learning rate.
        warmup_steps: Linear warm-up iterations.
        weight_decay: AdamW weight decay.
        ema_decay: EMA of the denoiser used for evaluation (``None``: no EMA).
        lpips_weight: Pixel LPIPS loss weight (applied only when LPIPS weights exist locally).
        sample_seed: Seed of the evaluation sampler (deterministic metrics).
        psnr_channel: ``y`` or ``rgb``.
        lpips_metric: Report LPIPS when its weights exist locally.
    """

    def __init__(
        self,
        early_fusion: bool = True,
        autoencoder_path: str | None = None,
        autoencoder_config: dict[str, Any] | None = None,
        model_channels: int = 160,
        channel_mult: Sequence[int] = (1, 2, 2, 4),
        num_res_blocks: int = 2,
        attention_levels: Sequence[int] = (1, 2, 4, 8),
        swin_depth: int = 2,
        swin_embed_dim: int = 192,
        window_size: int = 8,
        head_dim: int = 32,
        lq_widths: Sequence[int] = (16, 32, 64),
        steps: int = 4,
        kappa: float = 2.0,
        min_noise_level: float = 0.2,
        etas_end: float = 0.99,
        power: float = 0.3,
        lr: float = 5e-5,
        lr_min: float = 2e-5,
        warmup_steps: int = 500,
        weight_decay: float = 0.0,
        ema_decay: float | None = 0.999,
        lpips_weight: float = 4.0,
        sample_seed: int = 0,
        psnr_channel: str = "y",
        lpips_metric: bool = True,
    ) -> None:
        super().__init__(psnr_channel, lpips_metric)
        self.save_hyperparameters()
        autoencoder = load_autoencoder(autoencoder_path, **(autoencoder_config or {}))
        if autoencoder_path is not None and autoencoder.downsample_factor == 1:
            warnings.warn(
                f"autoencoder weights {autoencoder_path} not found: diffusion runs in pixel space", stacklevel=2
            )
        factor = int(autoencoder.downsample_factor)
        denoiser = SwinUNet(
            latent_channels=int(autoencoder.latent_channels), lq_in_channels=4 if early_fusion else 3,
            lq_widths=lq_widths, lq_downsample=int(math.log2(factor)), model_channels=model_channels,
            channel_mult=channel_mult, num_res_blocks=num_res_blocks, attention_levels=attention_levels,
            swin_depth=swin_depth, swin_embed_dim=swin_embed_dim, window_size=window_size, head_dim=head_dim,
        )  # fmt: skip
        diffusion = ResShiftDiffusion(steps, kappa, min_noise_level, etas_end, power)
        self.model = ResShift(denoiser, diffusion, autoencoder, early_fusion=early_fusion)
        self.ema: nn.Module | None = copy.deepcopy(denoiser).requires_grad_(False) if ema_decay else None
        self.lpips_loss: nn.Module | None = None
        if lpips_weight > 0 and lpips_available():
            from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

            self.lpips_loss = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=False)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:  # noqa: D102
        lq, gt = batch["lq"] * 2 - 1, batch["gt"] * 2 - 1
        out = self.model.training_loss(lq, gt, batch.get("mask"))
        loss = out["loss"]
        self.log("train/mse", loss, prog_bar=False)
        if self.lpips_loss is not None:
            pixels = self.model.decode(out["pred_x0"]).clamp(-1, 1)
            lp = self.lpips_loss(pixels, gt)
            self.log("train/lpips", lp)
            loss = loss + self.hparams["lpips_weight"] * lp
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:  # noqa: D102
        if self.ema is None:
            return
        decay = float(self.hparams["ema_decay"])
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.model.denoiser.parameters(), strict=True):
                e.lerp_(p.detach(), 1 - decay)
            for eb, b in zip(self.ema.buffers(), self.model.denoiser.buffers(), strict=True):
                eb.copy_(b)

    @torch.no_grad()
    def restore(self, lq: Tensor, mask: Tensor | None = None) -> Tensor:
        """Sample restored images in [0, 1] with the EMA denoiser (when kept) and a seeded generator."""
        model = self.model
        if self.ema is not None:
            model = ResShift(self.ema, self.model.diffusion, self.model.autoencoder,  # type: ignore[arg-type]
                             early_fusion=self.model.early_fusion)  # fmt: skip
        generator = torch.Generator(device=lq.device).manual_seed(int(self.hparams["sample_seed"]))
        return (model.restore(lq * 2 - 1, mask, generator=generator) + 1) / 2

    def configure_optimizers(self) -> Any:  # noqa: D102
        params = [p for p in self.model.denoiser.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"])
        total = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 1
        floor = self.hparams["lr_min"] / self.hparams["lr"]
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: _warmup_cosine(s, int(self.hparams["warmup_steps"]), total, floor)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class SupervisedRestorationTask(RestorationTask):
    """NAFNet-style U-Net trained with L1 (the simpler supervised baseline); ``use_mask`` early-fuses the mask.

    Args:
        use_mask: Feed the glint mask as a 4th input channel.
        width: Base width.
        enc_blocks: NAF blocks per encoder level.
        middle_blocks: NAF blocks at the bottleneck.
        dec_blocks: NAF blocks per decoder level.
        lr: Adam learning rate (1e-4, as NDR-Restore's recipe [code]).
        weight_decay: Weight decay (1e-8 [code]).
        lr_min_ratio: Final cosine LR as a fraction of ``lr``.
        psnr_channel: ``y`` or ``rgb``.
        lpips_metric: Report LPIPS when its weights exist locally.
    """

    def __init__(
        self,
        use_mask: bool = False,
        width: int = 16,
        enc_blocks: Sequence[int] = (1, 1, 2),
        middle_blocks: int = 2,
        dec_blocks: Sequence[int] = (1, 1, 1),
        lr: float = 1e-4,
        weight_decay: float = 1e-8,
        lr_min_ratio: float = 0.1,
        psnr_channel: str = "y",
        lpips_metric: bool = True,
    ) -> None:
        super().__init__(psnr_channel, lpips_metric)
        self.save_hyperparameters()
        self.model = NAFUNet(4 if use_mask else 3, 3, width, enc_blocks, middle_blocks, dec_blocks)

    def _input(self, lq: Tensor, mask: Tensor | None) -> Tensor:
        if not self.hparams["use_mask"]:
            return lq
        if mask is None:
            raise ValueError("use_mask=True needs batch['mask'] (B, 1, H, W)")
        return torch.cat([lq, mask], dim=1)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:  # noqa: D102
        pred = self.model(self._input(batch["lq"], batch.get("mask")))
        loss = F.l1_loss(pred, batch["gt"])
        self.log("train/loss", loss, prog_bar=True)
        return loss

    @torch.no_grad()
    def restore(self, lq: Tensor, mask: Tensor | None = None) -> Tensor:  # noqa: D102
        return self.model(self._input(lq, mask)).clamp(0, 1)

    def configure_optimizers(self) -> Any:  # noqa: D102
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams["lr"], betas=(0.9, 0.999),
                               weight_decay=self.hparams["weight_decay"])  # fmt: skip
        total = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 1
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: _warmup_cosine(s, 0, total, self.hparams["lr_min_ratio"])
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def load_task(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> RestorationTask:
    """Load a :class:`RestorationTask` checkpoint of this package (the class is stored in the checkpoint).

    Raises:
        FileNotFoundError: ``path`` is missing.
        DataFormatError: Not a checkpoint of this package.
    """
    import importlib

    from rsim.core.errors import DataFormatError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} is missing")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise DataFormatError(f"cannot read checkpoint {path} ({exc})") from exc
    name = ckpt.get("task_class") if isinstance(ckpt, dict) else None
    if not isinstance(name, str) or not name.startswith("rsim.sea_undistort."):
        raise DataFormatError(f"{path} is not a sea-undistort task checkpoint (no 'task_class' entry)")
    module, _, qualname = name.rpartition(".")
    cls = getattr(importlib.import_module(module), qualname)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        task = cls.load_from_checkpoint(path, map_location=map_location)
    return task.eval()
