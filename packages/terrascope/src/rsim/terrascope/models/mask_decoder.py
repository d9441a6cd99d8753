"""Mask decoders driven by the ``[SEG]`` prompt embedding: the light built-in decoder and the SAM-2 adapter."""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LightMaskDecoder", "SegPromptHead", "build_mask_decoder"]


class SegPromptHead(nn.Module):
    """``text_hidden_fcs``: Linear(d, d) → ReLU → Linear(d, prompt_dim) applied to the ``[SEG]`` hidden state."""

    def __init__(self, hidden_dim: int, prompt_dim: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, prompt_dim))

    def forward(self, hidden: Tensor) -> Tensor:
        """(..., d) → (..., prompt_dim)."""
        return self.net(hidden)


class LightMaskDecoder(nn.Module):
    """Prompt-conditioned decoder on the ViT patch grid: conv features, prompt modulation, dot product, upsampling.

    Args:
        in_channels: Channels of the vision features.
        prompt_dim: Width of the prompt embedding.
        hidden: Width of the decoder features.
    """

    def __init__(self, in_channels: int, prompt_dim: int = 256, hidden: int = 64) -> None:
        super().__init__()
        self.feat = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1), nn.GELU(), nn.Conv2d(hidden, hidden, 3, padding=1), nn.GELU()
        )
        self.film = nn.Linear(prompt_dim, 2 * hidden)
        self.query = nn.Linear(prompt_dim, hidden)
        self.refine = nn.Conv2d(hidden + 1, 1, 3, padding=1)
        self.hidden = hidden

    def forward(self, features: Tensor, prompt: Tensor, size: tuple[int, int]) -> Tensor:
        """Mask logits.

        Args:
            features: (B, C, h, w) vision features.
            prompt: (B, P, prompt_dim) one prompt per mask.
            size: Output (H, W).

        Returns:
            (B, P, H, W) logits.
        """
        f = self.feat(features)  # (B, h', C', w)
        b, p = prompt.shape[:2]
        gamma, beta = self.film(prompt).chunk(2, dim=-1)  # (B, P, C')
        mod = f[:, None] * (1 + gamma[..., None, None]) + beta[..., None, None]  # (B, P, C', h, w)
        dot = torch.einsum("bpchw,bpc->bphw", mod, self.query(prompt)) / math.sqrt(self.hidden)
        x = torch.cat([mod.flatten(0, 1), dot.flatten(0, 1)[:, None]], dim=1)
        low = self.refine(x).view(b, p, *f.shape[-2:]) + dot
        return F.interpolate(low, size=size, mode="bilinear", align_corners=False)


def build_mask_decoder(
    kind: str,
    *,
    in_channels: int,
    prompt_dim: int = 256,
    hidden: int = 64,
    sam2_checkpoint: str | os.PathLike[str] | None = None,
) -> nn.Module:
    """The configured decoder: ``light`` (default) or ``sam2`` (local checkpoint + the ``sam2`` library).

    Raises:
        FileNotFoundError: ``sam2`` without an existing checkpoint file.
        NotImplementedError: ``sam2`` asked for; the adapter is not part of this package (see README).
    """
    if kind == "light":
        return LightMaskDecoder(in_channels, prompt_dim, hidden)
    if kind == "sam2":
        if sam2_checkpoint is None or not os.path.isfile(sam2_checkpoint):
            raise FileNotFoundError(f"mask_decoder 'sam2' needs a local checkpoint file, got {sam2_checkpoint!r}")
        raise NotImplementedError(
            "the SAM-2 mask decoder adapter is not implemented in rsim-terrascope (the `sam2` library is not a "
            "dependency); use mask_decoder='light'"
        )
    raise ValueError(f"unknown mask_decoder {kind!r}; expected 'light' or 'sam2'")
