"""Full cross-sensor masked autoencoder (encoder + decoders), the trainable CSMAE / CSMoE model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from rsim.csmoe.models.backbone import VARIANTS, VIT_SIZES, CrossSensorViT, EncoderOutput, MaskingStrategy
from rsim.csmoe.models.decoder import ReconstructionDecoder
from torch import Tensor, nn

__all__ = ["CrossSensorMAE", "build_backbone"]


def build_backbone(
    vit_size: str = "base",
    variant: str = "sesd",
    *,
    embed_dim: int | None = None,
    num_heads: int | None = None,
    specific_depth: int | None = None,
    shared_depth: int | None = None,
    **kwargs: Any,
) -> CrossSensorViT:
    """Build a backbone from a ViT size and a CSMAE variant, with optional explicit overrides.

    Args:
        vit_size: ``tiny``, ``small``, ``base`` or ``large`` (width and heads of the original helpers).
        variant: ``cecd``, ``cesd``, ``secd`` or ``sesd`` (specific + shared depths).
        embed_dim: Override of the width.
        num_heads: Override of the heads.
        specific_depth: Override of the sensor-specific depth.
        shared_depth: Override of the shared depth.
        **kwargs: Further :class:`CrossSensorViT` arguments (``moe_layers``, ``num_experts``...).

    Returns:
        The backbone.
    """
    if vit_size not in VIT_SIZES:
        raise ValueError(f"vit_size must be one of {sorted(VIT_SIZES)}, got {vit_size!r}")
    if variant.lower() not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    dim, heads = VIT_SIZES[vit_size]
    spec, shared, _ = VARIANTS[variant.lower()]
    return CrossSensorViT(
        embed_dim=embed_dim or dim,
        num_heads=num_heads or heads,
        specific_depth=spec if specific_depth is None else specific_depth,
        shared_depth=shared if shared_depth is None else shared_depth,
        **kwargs,
    )


class CrossSensorMAE(nn.Module):
    """CSMAE / CSMoE encoder plus reconstruction decoders.

    Attribute names follow the original Lightning module (``backbone``, ``decoder`` or ``decoder_s1_to_s2`` /
    ``decoder_s2_to_s1``) so a published training checkpoint's ``state_dict`` maps one-to-one.

    Args:
        vit_size: Encoder size.
        variant: CSMAE variant; sets the depths and the decoding strategy.
        decoder_embed_dim: Decoder width.
        decoder_depth: Decoder blocks.
        decoder_num_heads: Decoder heads.
        decoding_strategy: Override of the variant's ``specific`` / ``common`` decoding.
        masking_strategy: ``random``, ``identical`` or ``disjoint``.
        moe_layers: Soft-MoE placement (empty = CSMAE).
        num_experts: Experts per Soft-MoE layer.
        slots_per_expert: Slots per expert.
        moe_normalize: Soft-MoE logit normalisation.
        embed_dim: Override of the encoder width.
        num_heads: Override of the encoder heads.
        specific_depth: Override of the specific depth.
        shared_depth: Override of the shared depth.
        img_size: Input size.
        patch_size: Patch size.
    """

    def __init__(
        self,
        vit_size: str = "base",
        variant: str = "sesd",
        decoder_embed_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        decoding_strategy: Literal["specific", "common"] | None = None,
        masking_strategy: MaskingStrategy = "random",
        moe_layers: Sequence[str] = (),
        num_experts: int = 8,
        slots_per_expert: int = 4,
        moe_normalize: bool = True,
        embed_dim: int | None = None,
        num_heads: int | None = None,
        specific_depth: int | None = None,
        shared_depth: int | None = None,
        img_size: int = 120,
        patch_size: int = 15,
    ) -> None:
        super().__init__()
        self.backbone = build_backbone(
            vit_size,
            variant,
            embed_dim=embed_dim,
            num_heads=num_heads,
            specific_depth=specific_depth,
            shared_depth=shared_depth,
            img_size=img_size,
            patch_size=patch_size,
            masking_strategy=masking_strategy,
            moe_layers=list(moe_layers),
            num_experts=num_experts,
            slots_per_expert=slots_per_expert,
            moe_normalize=moe_normalize,
        )
        self.decoding_strategy = decoding_strategy or VARIANTS[variant.lower()][2]
        if self.decoding_strategy not in ("specific", "common"):
            raise ValueError(f"decoding_strategy must be 'specific' or 'common', got {self.decoding_strategy!r}")
        args = dict(
            in_dim=self.backbone.embed_dim,
            embed_dim=decoder_embed_dim,
            depth=decoder_depth,
            num_heads=decoder_num_heads,
            num_patches=self.backbone.num_patches,
            patch_size=patch_size,
        )
        if self.decoding_strategy == "common":
            self.decoder = ReconstructionDecoder(**args, target="common")
        else:
            self.decoder_s2_to_s1 = ReconstructionDecoder(**args, target="s1")
            self.decoder_s1_to_s2 = ReconstructionDecoder(**args, target="s2")

    def decode(self, enc: EncoderOutput, to_sensor: Literal["s1", "s2"]) -> Tensor:
        """Predict ``to_sensor`` patches from one sensor's encoder output."""
        if self.decoding_strategy == "common":
            return self.decoder(enc.tokens, enc.ids_restore, to_sensor)
        dec = self.decoder_s2_to_s1 if to_sensor == "s1" else self.decoder_s1_to_s2
        return dec(enc.tokens, enc.ids_restore, to_sensor)

    def forward(
        self,
        imgs: Tensor,
        mask_ratio: float = 0.5,
        cross: bool = True,
        uni: bool = True,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Masked forward with ``disjoint`` reconstruction (the published setting).

        Cross-sensor predictions decode one sensor's tokens into the other sensor's pixels at the positions
        the source sensor masked (CSMAE's ``reconstruction_strategy: disjoint``).

        Args:
            imgs: ``[B, 12, H, W]`` in CSMAE band order.
            mask_ratio: Fraction of S1 patches masked (S2: same, or 1 - r with ``disjoint`` masking).
            cross: Compute the cross-sensor predictions.
            uni: Compute the same-sensor predictions.
            generator: RNG for the masks.

        Returns:
            ``feats_s1``/``feats_s2`` (pooled), ``mask_s1``/``mask_s2`` and predictions
            ``pred_<to>_from_<from>`` with their loss masks ``mask_<to>_from_<from>``.
        """
        enc = self.backbone.forward_masked(imgs, mask_ratio, generator=generator)
        e1, e2 = enc["s1"], enc["s2"]
        out = {"feats_s1": e1.pooled, "feats_s2": e2.pooled, "mask_s1": e1.mask, "mask_s2": e2.mask}
        if cross:
            out["pred_s2_from_s1"], out["mask_s2_from_s1"] = self.decode(e1, "s2"), e1.mask
            out["pred_s1_from_s2"], out["mask_s1_from_s2"] = self.decode(e2, "s1"), e2.mask
        if uni:
            out["pred_s1_from_s1"], out["mask_s1_from_s1"] = self.decode(e1, "s1"), e1.mask
            out["pred_s2_from_s2"], out["mask_s2_from_s2"] = self.decode(e2, "s2"), e2.mask
        return out
