"""Restoration metrics: PSNR on the Y channel, SSIM (torchmetrics), LPIPS only when its weights exist locally."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from rsim.core.metrics import PSNR
from torch import Tensor, nn
from torchmetrics.image import StructuralSimilarityIndexMeasure

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's AlexNet weights, needed by torchmetrics' LPIPS


def rgb_to_y(rgb: Tensor) -> Tensor:
    """ITU-R BT.601 luma of RGB in [0, 1] as in ResShift/BasicSR ``rgb2ycbcr(only_y=True)``, scaled to [0, 1]."""
    weights = torch.tensor([65.481, 128.553, 24.966], device=rgb.device, dtype=rgb.dtype).view(1, 3, 1, 1)
    return ((rgb * weights).sum(dim=1, keepdim=True) + 16.0) / 255.0


def lpips_available() -> bool:
    """Whether torchvision's AlexNet weights are in the local torch hub cache (nothing is downloaded)."""
    return (Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE).is_file()


class RestorationMetrics(nn.Module):
    """PSNR (Y channel or RGB, data range 1), SSIM (RGB, data range 1, Gaussian 11, σ 1.5) and optional LPIPS.

    Inputs are images in [0, 1]. LPIPS (AlexNet) runs only when ``lpips`` is True and :func:`lpips_available`;
    :attr:`lpips_skipped_reason` says why it was skipped.

    Args:
        psnr_channel: ``y`` (default, as the released validation code) or ``rgb``.
        lpips: Try to compute LPIPS.
    """

    psnr: Any
    ssim: Any
    lpips: Any

    def __init__(self, psnr_channel: str = "y", lpips: bool = True) -> None:
        super().__init__()
        if psnr_channel not in ("y", "rgb"):
            raise ValueError(f"psnr_channel must be 'y' or 'rgb', got {psnr_channel!r}")
        self.psnr_channel = psnr_channel
        self.psnr = PSNR(data_range=1.0)
        self.ssim = StructuralSimilarityIndexMeasure(data_range=1.0)
        self.lpips = None
        self.lpips_skipped_reason: str | None = None
        if not lpips:
            self.lpips_skipped_reason = "disabled"
        elif not lpips_available():
            self.lpips_skipped_reason = (
                f"no local AlexNet weights ({Path(torch.hub.get_dir()) / 'checkpoints' / ALEXNET_FILE})"
            )
        else:
            from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

            self.lpips = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True)

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch of restored and reference images (B, 3, H, W) in [0, 1]."""
        pred, target = pred.clamp(0, 1).float(), target.clamp(0, 1).float()
        if self.psnr_channel == "y":
            self.psnr.update(rgb_to_y(pred), rgb_to_y(target))
        else:
            self.psnr.update(pred, target)
        self.ssim.update(pred, target)
        if self.lpips is not None:
            self.lpips.update(pred, target)

    def compute(self) -> dict[str, float]:
        """``{"psnr_y" or "psnr": dB, "ssim": ..., "lpips": ... (when computed)}``."""
        out = {f"psnr{'_y' if self.psnr_channel == 'y' else ''}": float(self.psnr.compute()),
               "ssim": float(self.ssim.compute())}  # fmt: skip
        if self.lpips is not None:
            out["lpips"] = float(self.lpips.compute())
        return out

    def reset(self) -> None:
        """Clear the accumulated state."""
        self.psnr.reset()
        self.ssim.reset()
        if self.lpips is not None:
            self.lpips.reset()
