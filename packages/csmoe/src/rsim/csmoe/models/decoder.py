"""MAE-style reconstruction decoders of CSMAE (sensor-specific or sensor-common).

Key layout = the published CSMAE decoders: ``decoder_embed``, ``mask_token``, ``decoder_pos_embed``,
``decoder_blocks.*`` (timm ``Block``, LayerNorm eps 1e-5), ``decoder_norm`` and ``decoder_pred`` (specific) or
``decoder_pred_s1_to_s2`` / ``decoder_pred_s2_to_s1`` (common).
"""

from __future__ import annotations

from typing import Literal

import torch
from rsim.csmoe.models.pos_embed import sincos_pos_embed_2d
from timm.models.vision_transformer import Block
from torch import Tensor, nn

__all__ = ["CHANNELS", "ReconstructionDecoder"]

#: Channels predicted per target sensor.
CHANNELS: dict[str, int] = {"s1": 2, "s2": 10}


class ReconstructionDecoder(nn.Module):
    """Decode encoder tokens (cls + kept patches) into per-patch pixels of a target sensor.

    Args:
        in_dim: Encoder token width.
        embed_dim: Decoder width (512 in CSMAE).
        depth: Decoder blocks (8 in CSMAE).
        num_heads: Decoder heads (16 in CSMAE).
        num_patches: Patches per image (64).
        patch_size: Patch size in pixels (15).
        target: ``s1`` or ``s2`` for a sensor-specific decoder, ``common`` for the shared decoder with one
            prediction head per target sensor.
        mlp_ratio: MLP ratio of the decoder blocks.
    """

    def __init__(
        self,
        in_dim: int,
        embed_dim: int = 512,
        depth: int = 8,
        num_heads: int = 16,
        num_patches: int = 64,
        patch_size: int = 15,
        target: Literal["s1", "s2", "common"] = "s1",
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        grid = round(num_patches**0.5)
        if grid * grid != num_patches:
            raise ValueError(f"num_patches must be a square number, got {num_patches}")
        self.target = target
        self.num_patches, self.patch_size = num_patches, patch_size
        self.decoder_embed = nn.Linear(in_dim, embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.decoder_pos_embed = nn.Parameter(sincos_pos_embed_2d(embed_dim, grid).unsqueeze(0), requires_grad=False)
        self.decoder_blocks = nn.Sequential(
            *[Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=nn.LayerNorm) for _ in range(depth)]
        )
        self.decoder_norm = nn.LayerNorm(embed_dim)
        if target == "common":
            self.decoder_pred_s1_to_s2 = nn.Linear(embed_dim, patch_size**2 * CHANNELS["s2"])
            self.decoder_pred_s2_to_s1 = nn.Linear(embed_dim, patch_size**2 * CHANNELS["s1"])
        elif target in CHANNELS:
            self.decoder_pred = nn.Linear(embed_dim, patch_size**2 * CHANNELS[target])
        else:
            raise ValueError(f"decoder target must be 's1', 's2' or 'common', got {target!r}")
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, tokens: Tensor, ids_restore: Tensor, to_sensor: Literal["s1", "s2"]) -> Tensor:
        """Predict patches.

        Args:
            tokens: ``[B, 1 + L_keep, in_dim]`` encoder tokens (cls first, kept patches in shuffled order).
            ids_restore: ``[B, L]`` unshuffle indices of the encoder pass that produced ``tokens``.
            to_sensor: Sensor whose pixels are predicted.

        Returns:
            ``[B, L, patch_size² · C]`` predictions (channel-last within a patch, raster patch order).
        """
        if self.target != "common" and to_sensor != self.target:
            raise ValueError(f"this decoder predicts {self.target!r}, asked for {to_sensor!r}")
        x = self.decoder_embed(tokens)
        b, n_tok, d = x.shape
        n_mask = ids_restore.shape[1] + 1 - n_tok
        seq = torch.cat([x[:, 1:], self.mask_token.expand(b, n_mask, -1)], dim=1)
        seq = seq.gather(1, ids_restore[:, :, None].expand(-1, -1, d))
        x = torch.cat([x[:, :1], seq], dim=1) + self.decoder_pos_embed
        x = self.decoder_norm(self.decoder_blocks(x))
        if self.target == "common":
            head = self.decoder_pred_s2_to_s1 if to_sensor == "s1" else self.decoder_pred_s1_to_s2
        else:
            head = self.decoder_pred
        return head(x)[:, 1:]
