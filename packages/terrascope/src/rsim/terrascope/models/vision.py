"""Vision side: InternViT-300M (official weights via rsim-core) or a timm ViT, pixel shuffle and the MLP projector."""

from __future__ import annotations

import os
from typing import Any, Literal

import timm
from rsim.core.models import create_internvit, create_internvl_projector, internvl_pixel_shuffle
from rsim.core.weights import read_state_dict
from torch import Tensor, nn

__all__ = ["MLPProjector", "VisionEncoder", "pixel_shuffle"]


class VisionEncoder(nn.Module):
    """ViT returning the patch-token grid ``(B, C, h, w)`` (prefix tokens dropped).

    Args:
        model_name: timm architecture (``encoder="timm"`` only; tiny ones in tests).
        img_size: Input side in pixels.
        weights: Optional local weights (never downloaded). ``encoder="timm"``: a timm state dict
            (``.safetensors``/``.pt``). ``encoder="internvit"``: an official InternViT-300M-448px file or an InternVL
            chat checkpoint (file, ``*.index.json`` or model folder such as ``/models/InternVL3-8B``); only
            ``vision_model.*`` and ``mlp1.*`` are read.
        encoder: ``internvit`` = InternViT-300M-448px (:func:`rsim.core.models.create_internvit`, the paper's
            encoder) or ``timm`` = any timm ViT by ``model_name``.
        **kwargs: ``timm.create_model`` arguments (``embed_dim``, ``depth``, ``num_heads``, ``patch_size``...) or,
            for ``internvit``, :func:`~rsim.core.models.create_internvit` arguments (tiny sizes in tests).
    """

    def __init__(
        self,
        model_name: str = "vit_base_patch14_dinov2",
        img_size: int = 448,
        weights: str | os.PathLike[str] | None = None,
        encoder: Literal["timm", "internvit"] = "timm",
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if encoder not in ("timm", "internvit"):
            raise ValueError(f"vision encoder {encoder!r}: expected 'timm' or 'internvit'")
        self.encoder = encoder
        self.weights = None if weights is None else str(weights)
        vit: Any
        if encoder == "internvit":
            vit = create_internvit(weights, image_size=img_size, **kwargs)
        else:
            vit = timm.create_model(model_name, pretrained=False, img_size=img_size, num_classes=0, **kwargs)
        self.vit = vit
        self.img_size = img_size
        self.num_prefix_tokens = int(getattr(vit, "num_prefix_tokens", 1))
        self.embed_dim = int(vit.num_features)
        patch = vit.patch_embed.patch_size
        self.grid: tuple[int, int] = (img_size // int(patch[0]), img_size // int(patch[1]))
        if weights is not None and encoder == "timm":
            self.vit.load_state_dict(read_state_dict(weights), strict=True)

    def official_projector_state(self) -> dict[str, Tensor] | None:
        """The InternVL ``mlp1`` weights of the checkpoint (``net.*`` names of :class:`MLPProjector`), if any."""
        if self.encoder != "internvit" or self.weights is None:
            return None
        proj = create_internvl_projector(self.weights)
        if proj is None:
            return None
        return {f"net.{k}": v for k, v in proj.mlp1.state_dict().items()}

    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, S, S) normalised images → (B, C, h, w) patch features."""
        tokens = self.vit.forward_features(images)[:, self.num_prefix_tokens :]
        b, _, c = tokens.shape
        return tokens.transpose(1, 2).reshape(b, c, *self.grid)


def pixel_shuffle(x: Tensor, scale: float = 0.5) -> Tensor:
    """Merge each (1/scale)×(1/scale) block of tokens into one token: (B, C, h, w) → (B, C/scale², h·scale, w·scale).

    Channels follow InternVL's order (row offset, column offset, channel), so InternVL ``mlp1`` weights apply.
    """
    if round(1 / scale) == 1:
        return x
    return internvl_pixel_shuffle(x.permute(0, 2, 3, 1), scale).permute(0, 3, 1, 2)


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
