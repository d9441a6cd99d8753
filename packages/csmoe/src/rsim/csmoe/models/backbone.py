"""Cross-sensor ViT encoder of CSMAE, with optional Soft-MoE MLPs (CSMoE).

Key layout = the published CSMAE backbone (``patch_embed.proj``, ``patch_embed_s2.proj``, ``cls_token``,
``cls_token_s2``, ``pos_embed``, ``blocks_s1.*``, ``norm_s1``, ``blocks_s2.*``, ``norm_s2``, ``blocks.*``,
``norm``, ``fc_norm``) so that its checkpoints load unchanged; blocks are timm ``Block`` modules. A Soft-MoE
block keeps the attention keys and replaces ``mlp.fc1/fc2`` by ``mlp.phi``, ``mlp.scale`` and
``mlp.fc{1,2}_{weight,bias}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
from rsim.csmoe.models.pos_embed import sincos_pos_embed_2d
from rsim.csmoe.models.soft_moe import SoftMoE
from timm.models.vision_transformer import Block
from torch import Tensor, nn

__all__ = [
    "CSMAE_BAND_ORDER",
    "VARIANTS",
    "VIT_SIZES",
    "CrossSensorViT",
    "EncoderOutput",
    "MaskingStrategy",
    "resolve_moe_layers",
]

#: Channel order of the 12-band input of the original CSMAE (S2 first, then VH, VV).
CSMAE_BAND_ORDER: tuple[str, ...] = (
    "B02",
    "B03",
    "B04",
    "B08",
    "B05",
    "B06",
    "B07",
    "B11",
    "B12",
    "B8A",
    "VH",
    "VV",
)
S2_CHANNELS = 10
S1_CHANNELS = 2

#: ViT sizes of the original ``vit_*`` helpers: (embed_dim, num_heads).
VIT_SIZES: dict[str, tuple[int, int]] = {
    "tiny": (192, 3),
    "small": (384, 6),
    "base": (768, 12),
    "large": (1024, 16),
}
#: CSMAE variants: (sensor-specific depth, shared depth, decoding strategy).
VARIANTS: dict[str, tuple[int, int, str]] = {
    "cecd": (12, 0, "common"),
    "cesd": (12, 0, "specific"),
    "secd": (10, 2, "common"),
    "sesd": (10, 2, "specific"),
}

MaskingStrategy = Literal["random", "identical", "disjoint"]


@dataclass
class EncoderOutput:
    """Per-sensor encoder result.

    Attributes:
        pooled: ``[B, D]`` pooled feature (after ``fc_norm``).
        tokens: ``[B, 1 + L_keep, D]`` tokens after ``norm`` (cls first; kept patches in shuffled order).
        mask: ``[B, L]`` 1 = masked (removed), 0 = kept, in raster order.
        ids_restore: ``[B, L]`` indices that unshuffle the kept+masked sequence.
    """

    pooled: Tensor
    tokens: Tensor
    mask: Tensor
    ids_restore: Tensor


def resolve_moe_layers(spec: Sequence[str], specific_depth: int, shared_depth: int) -> list[str]:
    """Turn a MoE placement spec into block names.

    Args:
        spec: Entries ``"shared"`` (all shared blocks), ``"specific_second_half"`` (the last half of both
            sensor-specific stacks), ``"specific"`` (all of them), or explicit names ``blocks.0``,
            ``blocks_s1.7``...
        specific_depth: Depth of each sensor-specific stack.
        shared_depth: Depth of the shared stack.

    Returns:
        Sorted, de-duplicated block names.
    """
    names: set[str] = set()
    valid = {f"blocks.{i}" for i in range(shared_depth)}
    valid |= {f"blocks_{s}.{i}" for s in ("s1", "s2") for i in range(specific_depth)}
    for item in spec:
        if item == "shared":
            names |= {f"blocks.{i}" for i in range(shared_depth)}
        elif item == "specific":
            names |= {f"blocks_{s}.{i}" for s in ("s1", "s2") for i in range(specific_depth)}
        elif item == "specific_second_half":
            names |= {f"blocks_{s}.{i}" for s in ("s1", "s2") for i in range(specific_depth // 2, specific_depth)}
        elif item in valid:
            names.add(item)
        else:
            raise ValueError(
                f"moe_layers entry {item!r} is neither 'shared', 'specific', 'specific_second_half' "
                f"nor a block "
                f"name of this model (e.g. {sorted(valid)[:3]})"
            )
    return sorted(names)


class CrossSensorViT(nn.Module):
    """CSMAE backbone (``moe_layers`` empty) or CSMoE backbone (Soft-MoE MLP in the listed blocks).

    Input ``[B, 12, H, W]`` in :data:`CSMAE_BAND_ORDER` (channels 0-9 = S2, 10-11 = S1).

    Args:
        img_size: Input size in pixels.
        patch_size: Patch size.
        embed_dim: Token width.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width / token width.
        specific_depth: Blocks per sensor-specific stack.
        shared_depth: Shared cross-sensor blocks.
        norm_eps: LayerNorm epsilon (1e-6 in the published models).
        global_pool: ``avg`` (mean of patch tokens, then ``fc_norm``) or ``token`` (cls token).
        masking_strategy: ``random`` (independent per sensor), ``identical`` or ``disjoint`` (S2 keeps what S1
            masks; S2 ratio 1 - r).
        moe_layers: Soft-MoE placement (see :func:`resolve_moe_layers`); empty = dense CSMAE.
        num_experts: Experts per Soft-MoE layer.
        slots_per_expert: Slots per expert.
        moe_normalize: Soft-MoE logit normalisation with a learnable scale.
    """

    def __init__(
        self,
        img_size: int = 120,
        patch_size: int = 15,
        embed_dim: int = 768,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        specific_depth: int = 10,
        shared_depth: int = 2,
        norm_eps: float = 1e-6,
        global_pool: Literal["avg", "token"] = "avg",
        masking_strategy: MaskingStrategy = "random",
        moe_layers: Sequence[str] = (),
        num_experts: int = 8,
        slots_per_expert: int = 4,
        moe_normalize: bool = True,
    ) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        if global_pool not in ("avg", "token"):
            raise ValueError(f"global_pool must be 'avg' or 'token', got {global_pool!r}")
        if masking_strategy not in ("random", "identical", "disjoint"):
            raise ValueError(f"masking_strategy must be random, identical or disjoint, got {masking_strategy!r}")
        self.img_size, self.patch_size, self.embed_dim = img_size, patch_size, embed_dim
        self.grid = img_size // patch_size
        self.num_patches = self.grid**2
        self.specific_depth, self.shared_depth = specific_depth, shared_depth
        self.global_pool = global_pool
        self.masking_strategy: MaskingStrategy = masking_strategy
        norm = partial(nn.LayerNorm, eps=norm_eps)

        self.patch_embed = _PatchEmbed(S1_CHANNELS, embed_dim, patch_size)
        self.patch_embed_s2 = _PatchEmbed(S2_CHANNELS, embed_dim, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.cls_token_s2 = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(
            sincos_pos_embed_2d(embed_dim, self.grid, cls_token=True).unsqueeze(0), requires_grad=False
        )

        def make(n: int) -> nn.Sequential:
            blocks = [
                Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm)  # type: ignore[arg-type]
                for _ in range(n)
            ]
            return nn.Sequential(*blocks)

        if specific_depth:
            self.blocks_s1 = make(specific_depth)
            self.norm_s1 = norm(embed_dim)
            self.blocks_s2 = make(specific_depth)
            self.norm_s2 = norm(embed_dim)
        self.blocks = make(shared_depth)
        self.norm = norm(embed_dim)
        self.fc_norm = norm(embed_dim) if global_pool == "avg" else nn.Identity()
        self._init_weights()

        self.moe_layer_names = resolve_moe_layers(moe_layers, specific_depth, shared_depth)
        hidden = int(embed_dim * mlp_ratio)
        for name in self.moe_layer_names:
            block = self.get_submodule(name)
            assert isinstance(block, Block)
            block.mlp = SoftMoE(embed_dim, num_experts, slots_per_expert, hidden, normalize=moe_normalize)
        #: Expert usage of the last forward: ``{sensor: {block name: [num_experts]}}``.
        self.last_moe_usage: dict[str, dict[str, Tensor]] = {}

    # -- init ---
    def _init_weights(self) -> None:
        """MAE-style init: xavier-uniform Linear/patch weights, zero biases, N(0, 0.02) cls tokens."""
        for pe in (self.patch_embed, self.patch_embed_s2):
            w = pe.proj.weight.data
            nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.cls_token_s2, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # -- helpers ---
    def moe_modules(self) -> dict[str, SoftMoE]:
        """The Soft-MoE layers by block name."""
        out: dict[str, SoftMoE] = {}
        for name in self.moe_layer_names:
            mlp = self.get_submodule(f"{name}.mlp")
            assert isinstance(mlp, SoftMoE)
            out[name] = mlp
        return out

    def split_sensors(self, imgs: Tensor) -> tuple[Tensor, Tensor]:
        """Split a 12-channel input into (S1 ``[B, 2, H, W]``, S2 ``[B, 10, H, W]``)."""
        expected = S1_CHANNELS + S2_CHANNELS
        if imgs.dim() != 4 or imgs.shape[1] != expected:
            raise ValueError(
                f"CSMAE input must be [B, {expected}, H, W] in band order {list(CSMAE_BAND_ORDER)}, "
                f"got shape {tuple(imgs.shape)}"
            )
        if imgs.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(f"CSMAE input must be {self.img_size}x{self.img_size} px, got {tuple(imgs.shape[-2:])}")
        return imgs[:, S2_CHANNELS:], imgs[:, :S2_CHANNELS]

    def _shuffle(self, n: int, device: torch.device, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        noise = torch.rand(n, self.num_patches, device=device, generator=generator)
        ids_shuffle = noise.argsort(dim=1)
        return ids_shuffle, ids_shuffle.argsort(dim=1)

    def _run(self, stack: nn.Sequential, x: Tensor, sensor: str, prefix: str) -> Tensor:
        for i, block in enumerate(stack):
            x = block(x)
            name = f"{prefix}.{i}"
            mlp = block.mlp
            if name in self.moe_layer_names and isinstance(mlp, SoftMoE):
                usage = mlp.last_expert_usage
                if usage is not None:
                    self.last_moe_usage.setdefault(sensor, {})[name] = usage
        return x

    def encode_sensor(
        self,
        x: Tensor,
        sensor: Literal["s1", "s2"],
        mask_ratio: float = 0.0,
        ids_shuffle: Tensor | None = None,
    ) -> EncoderOutput:
        """Encode one sensor's image ``[B, C, H, W]`` (C = 2 for S1, 10 for S2).

        Args:
            x: The sensor's channels.
            sensor: ``s1`` or ``s2``.
            mask_ratio: Fraction of patches removed.
            ids_shuffle: ``[B, L]`` token permutation; the first ``L·(1 - mask_ratio)`` are kept. Default:
                identity (no shuffle, the same result as CSMAE up to summation order).

        Returns:
            The sensor's :class:`EncoderOutput`.
        """
        embed, cls = (self.patch_embed, self.cls_token) if sensor == "s1" else (self.patch_embed_s2, self.cls_token_s2)
        tokens = embed(x) + self.pos_embed[:, 1:]
        b, n, d = tokens.shape
        if ids_shuffle is None:
            ids_shuffle = torch.arange(n, device=x.device).expand(b, n)
        ids_restore = ids_shuffle.argsort(dim=1)
        keep = int(n * (1 - mask_ratio))
        kept = tokens.gather(1, ids_shuffle[:, :keep, None].expand(-1, -1, d))
        mask = torch.ones(b, n, device=x.device)
        mask[:, :keep] = 0
        mask = mask.gather(1, ids_restore)
        h = torch.cat([(cls + self.pos_embed[:, :1]).expand(b, -1, -1), kept], dim=1)
        if self.specific_depth:
            h = self._run(self.blocks_s1 if sensor == "s1" else self.blocks_s2, h, sensor, f"blocks_{sensor}")
            h = (self.norm_s1 if sensor == "s1" else self.norm_s2)(h)
        h = self.norm(self._run(self.blocks, h, sensor, "blocks"))
        pooled = self.fc_norm(h[:, 1:].mean(dim=1)) if self.global_pool == "avg" else h[:, 0]
        return EncoderOutput(pooled, h, mask, ids_restore)

    def forward_masked(
        self, imgs: Tensor, mask_ratio: float, generator: torch.Generator | None = None
    ) -> dict[str, EncoderOutput]:
        """Mask both sensors with the configured strategy and encode them (training path)."""
        s1, s2 = self.split_sensors(imgs)
        self.last_moe_usage = {}
        shuffle_s1, _ = self._shuffle(imgs.shape[0], imgs.device, generator)
        ratio_s2 = mask_ratio
        if self.masking_strategy == "identical":
            shuffle_s2 = shuffle_s1
        elif self.masking_strategy == "disjoint":
            shuffle_s2 = shuffle_s1.flip(dims=[1])
            ratio_s2 = 1.0 - mask_ratio
        else:
            shuffle_s2, _ = self._shuffle(imgs.shape[0], imgs.device, generator)
        return {
            "s1": self.encode_sensor(s1, "s1", mask_ratio, shuffle_s1),
            "s2": self.encode_sensor(s2, "s2", ratio_s2, shuffle_s2),
        }

    def forward(self, imgs: Tensor) -> dict[str, Tensor]:
        """Pooled features without masking: ``{"s1": [B, D], "s2": [B, D]}``."""
        s1, s2 = self.split_sensors(imgs)
        self.last_moe_usage = {}
        return {"s1": self.encode_sensor(s1, "s1").pooled, "s2": self.encode_sensor(s2, "s2").pooled}


class _PatchEmbed(nn.Module):
    """Conv patch embedding ``[B, C, H, W] -> [B, L, D]`` (key ``proj`` as in timm)."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] != self.in_chans:
            raise ValueError(f"patch embedding expects {self.in_chans} channels, got {x.shape[1]}")
        return self.proj(x).flatten(2).transpose(1, 2)
