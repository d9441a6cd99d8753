"""ResShift and ResShift+EF: residual-shifting diffusion with a Swin-UNet denoiser in a (frozen) VQ latent space."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from rsim.sea_undistort.models.diffusion import ResShiftDiffusion
from rsim.sea_undistort.models.swin_unet import SwinUNet
from torch import Tensor, nn


class ResShift(nn.Module):
    """Image-to-image residual-shifting diffusion.

    Images are in [-1, 1]. ``y = E(lq)``, ``x0 = E(gt)``; the denoiser gets the scaled x_t, the step and the LQ
    image (with the glint mask as 4th channel when ``early_fusion``, i.e. ResShift+EF) and predicts x0.

    Args:
        denoiser: The :class:`SwinUNet` (``lq_in_channels`` 4 for early fusion).
        diffusion: The :class:`ResShiftDiffusion` chain.
        autoencoder: Frozen VQ autoencoder or ``PixelSpace``.
        early_fusion: Concatenate the mask to the LQ image before the LQ feature extractor.
    """

    autoencoder: Any

    def __init__(self, denoiser: SwinUNet, diffusion: ResShiftDiffusion, autoencoder: nn.Module, *,
                 early_fusion: bool = False) -> None:  # fmt: skip
        super().__init__()
        expected = 4 if early_fusion else 3
        got = denoiser.lq_encoder.net[0].in_channels
        if got != expected:
            raise ValueError(f"early_fusion={early_fusion} needs a denoiser with {expected} LQ channels, got {got}")
        self.denoiser, self.diffusion, self.autoencoder = denoiser, diffusion, autoencoder
        self.early_fusion = early_fusion

    def condition(self, lq: Tensor, mask: Tensor | None) -> Tensor:
        """The LQ feature extractor's input: RGB, or RGB + mask (early fusion)."""
        if not self.early_fusion:
            return lq
        if mask is None:
            raise ValueError("ResShift+EF needs a glint mask (B, 1, H, W); got None")
        return torch.cat([lq, mask.to(lq.dtype)], dim=1)

    @torch.no_grad()
    def encode(self, image: Tensor) -> Tensor:
        """Image → latent with the frozen autoencoder."""
        return self.autoencoder.encode(image)

    def decode(self, latent: Tensor) -> Tensor:
        """Latent → image."""
        return self.autoencoder.decode(latent)

    def training_loss(
        self, lq: Tensor, gt: Tensor, mask: Tensor | None = None, *, t: Tensor | None = None,
        noise: Tensor | None = None,
    ) -> dict[str, Tensor]:  # fmt: skip
        """Latent MSE between predicted and true x0 at random steps; returns ``loss``, ``pred_x0``, ``x0``, ``t``."""
        y, x0 = self.encode(lq), self.encode(gt)
        if t is None:
            t = torch.randint(0, self.diffusion.steps, (lq.shape[0],), device=lq.device)
        x_t = self.diffusion.q_sample(x0, y, t, noise)
        pred = self.denoiser(self.diffusion.scale_input(x_t, t), t, self.condition(lq, mask))
        return {"loss": F.mse_loss(pred, x0), "pred_x0": pred, "x0": x0, "t": t}

    @torch.no_grad()
    def restore(self, lq: Tensor, mask: Tensor | None = None, *, generator: torch.Generator | None = None) -> Tensor:
        """Sample the restored image (B, 3, H, W) in [-1, 1] with T reverse steps."""
        y = self.encode(lq)
        cond = self.condition(lq, mask)
        latent = self.diffusion.sample(lambda x, t: self.denoiser(x, t, cond), y, generator=generator)
        return self.decode(latent).clamp(-1, 1)
