"""Vision side: a timm ViT (random init or local weights), pixel shuffle and the MLP projector."""

from __future__ import annotations

import os
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MLPProjector", "VisionEncoder", "pixel_shuffle"]


class VisionEncoder(nn.Module):
    """timm ViT returning the patch-token grid ``(B, C, h, w)`` (prefix tokens dropped).

    Args:
        model_name: timm architecture (``vit_large_patch14_224`` class for InternViT-scale, tiny ones in tests).
        img_size: Input side in pixels.
        weights: Optional local ``.safetensors``/``.pt`` state dict (never downloaded).
        **kwargs: Passed to ``timm.create_model`` (``embed_dim``, ``depth``, ``num_heads``, ``patch_size``...).
    """

    def __init__(
        self,
        model_name: str = "vit_base_patch14_dinov2",
        img_size: int = 448,
        weights: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        vit: Any = timm.create_model(model_name, pretrained=False, img_size=img_size, num_classes=0, **kwargs)
        self.vit = vit
        self.img_size = img_size
        self.num_prefix_tokens = int(getattr(vit, "num_prefix_tokens", 1))
        self.embed_dim = int(vit.num_features)
        patch = vit.patch_embed.patch_size
        self.grid: tuple[int, int] = (img_size // int(patch[0]), img_size // int(patch[1]))
        if weights is not None:
            load_state_dict_file(self.vit, weights)

    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, S, S) normalised images → (B, C, h, w) patch features."""
        tokens = self.vit.forward_features(images)[:, self.num_prefix_tokens :]
        b, _, c = tokens.shape
        return tokens.transpose(1, 2).reshape(b, c, *self.grid)


def load_state_dict_file(module: nn.Module, path: str | os.PathLike[str]) -> None:
    """Load a local ``.safetensors`` or torch state dict into ``module`` (strict).

    Raises:
        FileNotFoundError: The file is missing.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file {path} is missing")
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    module.load_state_dict(state, strict=True)


def pixel_shuffle(x: Tensor, scale: float = 0.5) -> Tensor:
    """Merge each (1/scale)×(1/scale) block of tokens into one token: (B, C, h, w) → (B, C/scale², h·scale, w·scale)."""
    factor = round(1 / scale)
    if factor == 1:
        return x
    return F.pixel_unshuffle(x, factor)


class MLPProjector(nn.Module):
    """LayerNorm → Linear → GELU → Linear, from shuffled vision features to the LM width."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(in_dim), nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        """(..., in_dim) → (..., out_dim)."""
        return self.net(x)
