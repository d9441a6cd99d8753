"""CROMA (Fuller et al., NeurIPS 2023): radar + optical ViT encoders with 2-D ALiBi attention bias, joint encoder.

Built from timm ``Block`` modules (the ALiBi bias goes in as the attention mask) so :func:`rsim.slimming.slim`
applies; written from the published structure (facts only, no code copied). Official checkpoint layout
(``CROMA_base.pt`` / ``CROMA_large.pt``: a dict of five state dicts) [code: antofuller/CROMA ``use_croma.py``;
torchgeo ``torchgeo/models/croma.py`` loads the same groups]:

- ``s1_encoder`` (radar, 2 bands VV/VH, depth/2 layers) and ``s2_encoder`` (optical, 12 bands, depth layers):
  ``linear_input.{weight,bias}`` (patchified ``(c, i, j)``-ordered 8×8 pixels -> D), ``transformer.layers.N.0.
  {input_norm.*, to_qkv.weight (no bias), to_out.*}`` (pre-norm self-attention, ALiBi bias),
  ``transformer.layers.N.1.{input_norm.*, net.0.* [2·4D, D], net.3.* [D, 4D]}`` (GEGLU feed-forward: value half,
  then gate half), ``transformer.norm_out.*``;
- ``s1_GAP_FFN`` / ``s2_GAP_FFN``: ``0`` LayerNorm, ``1`` Linear(D, 4D), GELU, ``3`` Linear(4D, D), applied to the
  mean of the patch tokens;
- ``joint_encoder`` (depth/2 layers, radar tokens attend to optical tokens): ``layers.N.0`` self-attention as
  above, ``layers.N.1.{input_norm.*, to_q, to_k, to_v (no bias), to_out.*}`` cross-attention (one norm applied to
  both streams), ``layers.N.2`` GEGLU feed-forward, ``norm_out.*``; its output is mean-pooled (no FFN).

Sizes: base D = 768, depth 12, 16 heads; large D = 1024, depth 24, 16 heads; patch 8, 120 px [code].
ALiBi: head ``h`` adds ``-m_h · ‖p_i - p_j‖₂`` (Euclidean patch-grid distance) with the ALiBi slope sequence.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import GluMlp
from timm.models.vision_transformer import Block
from torch import Tensor, nn

__all__ = [
    "CROMA",
    "CROMA_SIZES",
    "CromaCrossAttention",
    "CromaCrossBlock",
    "CromaViT",
    "alibi_slopes",
    "build_croma",
    "convert_croma_checkpoint",
    "croma_alibi_bias",
]

#: (embed_dim, depth, num_heads) [code: use_croma.py].
CROMA_SIZES: dict[str, tuple[int, int, int]] = {"base": (768, 12, 16), "large": (1024, 24, 16)}


def alibi_slopes(num_heads: int) -> list[float]:
    """ALiBi head slopes: geometric ``2^(-8/n)``-based sequence, interleaved for non-powers of two."""
    if num_heads & (num_heads - 1) == 0:
        start = 2.0 ** (-(2.0 ** -(math.log2(num_heads) - 3)))
        return [start ** (i + 1) for i in range(num_heads)]
    lower = 2 ** math.floor(math.log2(num_heads))
    return alibi_slopes(lower) + alibi_slopes(2 * lower)[0::2][: num_heads - lower]


def croma_alibi_bias(num_heads: int, grid: int) -> Tensor:
    """2-D ALiBi bias ``[1, H, L, L]`` with ``L = grid²`` (row-major patches)."""
    pts = torch.tensor(list(itertools.product(range(grid), range(grid))), dtype=torch.float32)
    dist = torch.cdist(pts, pts)  # Euclidean grid distance
    slopes = torch.tensor(alibi_slopes(num_heads), dtype=torch.float32)
    return (-slopes[:, None, None] * dist[None]).unsqueeze(0)


def _block(dim: int, heads: int) -> Block:
    # GluMlp with gate_last: fc1 -> [value | gate], value * GELU(gate) == CROMA's GEGLU; no qkv bias
    return Block(dim, heads, mlp_ratio=8.0, qkv_bias=False, mlp_layer=GluMlp, act_layer=nn.GELU)


class CromaViT(nn.Module):
    """One CROMA modality encoder: linear patch embedding, ALiBi self-attention blocks, final norm."""

    def __init__(self, in_chans: int, embed_dim: int, depth: int, num_heads: int, patch_size: int = 8) -> None:
        super().__init__()
        self.in_chans, self.patch_size = in_chans, patch_size
        self.linear_input = nn.Linear(patch_size * patch_size * in_chans, embed_dim)
        self.blocks = nn.ModuleList([_block(embed_dim, num_heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        """Patch encodings ``[B, L, D]`` of ``x`` ``[B, C, H, W]``."""
        b, c, h, w = x.shape
        p = self.patch_size
        if c != self.in_chans or h % p or w % p:
            raise ValueError(f"CROMA encoder expects [B, {self.in_chans}, H, W] with H, W multiples of {p}")
        x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // p) * (w // p), -1)
        x = self.linear_input(x)
        for block in self.blocks:
            x = block(x, attn_mask=bias)
        return self.norm(x)


class CromaCrossAttention(nn.Module):
    """Cross-attention of ``x`` to ``context`` with one pre-norm on both, ALiBi bias, no q/k/v bias.

    Exposes :meth:`slimmed` so :func:`rsim.slimming.slim` can cut it like timm ``Attention``.
    """

    def __init__(self, dim: int, num_heads: int, head_dim: int | None = None, scale: float | None = None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim or dim // num_heads
        self.source_heads = num_heads
        self.kept_heads: list[int] = list(range(num_heads))
        inner = num_heads * self.head_dim
        self.scale = scale if scale is not None else self.head_dim**-0.5
        self.norm = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, inner, bias=False)
        self.k = nn.Linear(dim, inner, bias=False)
        self.v = nn.Linear(dim, inner, bias=False)
        self.proj = nn.Linear(inner, dim)

    def forward(self, x: Tensor, context: Tensor, bias: Tensor | None = None) -> Tensor:
        """``[B, N, D]`` attended over ``context`` ``[B, M, D]``."""
        x, context = self.norm(x), self.norm(context)
        b, n, _ = x.shape
        q = self.q(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k(context).view(b, -1, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v(context).view(b, -1, self.num_heads, self.head_dim).transpose(1, 2)
        if bias is not None and bias.dim() == 4 and bias.shape[1] == self.source_heads != self.num_heads:
            bias = bias[:, self.kept_heads]  # fewer-heads slimming: the bias of the kept heads
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))

    def unit_scores(self) -> Tensor:
        """L1 importance ``[H, d_k]`` of every head dimension (its q, k, v rows and proj column)."""
        qkv = sum(getattr(self, n).weight.detach().abs().sum(1) for n in ("q", "k", "v"))
        out = qkv + self.proj.weight.detach().abs().sum(0)
        return out.view(self.num_heads, self.head_dim)

    def slimmed(self, idx: Tensor, heads: int, dims: int, scale: float) -> CromaCrossAttention:
        """A physically smaller copy keeping q/k/v output features ``idx`` (``heads`` × ``dims``)."""
        out = copy.deepcopy(self)
        out.kept_heads = [self.kept_heads[int(h)] for h in idx.view(heads, dims)[:, 0] // self.head_dim]
        out.num_heads, out.head_dim, out.scale = heads, dims, scale
        idx = idx.to(self.q.weight.device)
        for name in ("q", "k", "v"):
            full: nn.Linear = getattr(self, name)
            layer = nn.Linear(full.in_features, len(idx), bias=False).to(full.weight.device, full.weight.dtype)
            with torch.no_grad():
                layer.weight.copy_(full.weight[idx])
            setattr(out, name, layer)
        proj = nn.Linear(len(idx), self.proj.out_features).to(self.proj.weight.device, self.proj.weight.dtype)
        with torch.no_grad():
            proj.weight.copy_(self.proj.weight[:, idx])
            proj.bias.copy_(self.proj.bias)
        out.proj = proj
        return out


class CromaCrossBlock(nn.Module):
    """Joint-encoder layer: ALiBi self-attention, cross-attention to the optical tokens, GEGLU feed-forward."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        block = _block(dim, num_heads)
        self.norm1, self.attn = block.norm1, block.attn
        self.cross_attn = CromaCrossAttention(dim, num_heads)
        self.norm2, self.mlp = block.norm2, block.mlp

    def forward(self, x: Tensor, context: Tensor, bias: Tensor) -> Tensor:
        """Update radar tokens ``x`` with optical ``context``."""
        x = x + self.attn(self.norm1(x), attn_mask=bias)
        x = x + self.cross_attn(x, context, bias)
        return x + self.mlp(self.norm2(x))


def _gap_ffn(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))


class CROMA(nn.Module):
    """CROMA encoders for ``modality`` ``optical`` (12 bands), ``sar`` (2 bands) or ``both``.

    Input ``[B, C, H, W]``; with ``both``, channels ``0:2`` are Sentinel-1 VV/VH and ``2:14`` the 12 Sentinel-2
    bands [assumption: channel stacking, the official API takes two tensors]. Output: pooled features ``[B, D]``
    for one modality; for ``both`` a dict ``{"sar", "optical", "joint"}`` of ``[B, D]`` (``output`` picks one).

    Args:
        modality: ``optical``, ``sar`` or ``both``.
        size: ``base`` or ``large`` (sets D/depth/heads unless given).
        img_size: Input size in pixels (120 in pre-training) [code].
        output: ``all`` or one of ``sar``/``optical``/``joint`` (``both`` only).
    """

    def __init__(
        self,
        modality: str = "optical",
        size: str = "base",
        img_size: int = 120,
        patch_size: int = 8,
        embed_dim: int | None = None,
        depth: int | None = None,
        num_heads: int | None = None,
        output: str = "all",
    ) -> None:
        super().__init__()
        if modality not in ("optical", "sar", "both"):
            raise ValueError(f"CROMA modality must be 'optical', 'sar' or 'both', got {modality!r}")
        if size not in CROMA_SIZES:
            raise ValueError(f"CROMA size must be one of {sorted(CROMA_SIZES)}, got {size!r}")
        if output not in ("all", "sar", "optical", "joint") or (output != "all" and modality != "both"):
            raise ValueError(f"output {output!r} needs modality 'both' (or use 'all')")
        d0, depth0, h0 = CROMA_SIZES[size]
        dim, depth, heads = embed_dim or d0, depth or depth0, num_heads or h0
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} must be a multiple of the patch size {patch_size}")
        self.modality, self.output, self.embed_dim, self.img_size = modality, output, dim, img_size
        self.patch_size = patch_size
        self.in_chans = {"optical": 12, "sar": 2, "both": 14}[modality]
        self.register_buffer("attn_bias", croma_alibi_bias(heads, img_size // patch_size), persistent=False)
        if modality in ("sar", "both"):
            self.s1_encoder = CromaViT(2, dim, depth // 2, heads, patch_size)
            self.s1_gap = _gap_ffn(dim)
        if modality in ("optical", "both"):
            self.s2_encoder = CromaViT(12, dim, depth, heads, patch_size)
            self.s2_gap = _gap_ffn(dim)
        if modality == "both":
            self.joint_blocks = nn.ModuleList([CromaCrossBlock(dim, heads) for _ in range(depth // 2)])
            self.joint_norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor | dict[str, Tensor]:
        """Pooled features (see class docstring)."""
        if x.shape[1] != self.in_chans:
            raise ValueError(f"CROMA ({self.modality}) expects {self.in_chans} channels, got {x.shape[1]}")
        bias: Tensor = self.attn_bias  # type: ignore[assignment]
        if (x.shape[-2] // self.patch_size) * (x.shape[-1] // self.patch_size) != bias.shape[-1]:
            raise ValueError(f"CROMA was built for {self.img_size} px inputs, got {tuple(x.shape[-2:])}")
        if self.modality == "sar":
            return self.s1_gap(self.s1_encoder(x, bias).mean(1))
        if self.modality == "optical":
            return self.s2_gap(self.s2_encoder(x, bias).mean(1))
        sar, opt = self.s1_encoder(x[:, :2], bias), self.s2_encoder(x[:, 2:], bias)
        joint = sar
        for block in self.joint_blocks:
            joint = block(joint, opt, bias)
        out = {
            "sar": self.s1_gap(sar.mean(1)),
            "optical": self.s2_gap(opt.mean(1)),
            "joint": self.joint_norm(joint).mean(1),
        }
        return out if self.output == "all" else out[self.output]


def build_croma(**kwargs: Any) -> CROMA:
    """CROMA encoder (see :class:`CROMA`)."""
    return CROMA(**kwargs)


_RULES: list[tuple[str, str]] = [
    (r"^(s[12])_encoder\.transformer\.layers\.(\d+)\.0\.input_norm\.", r"\1_encoder.blocks.\2.norm1."),
    (r"^(s[12])_encoder\.transformer\.layers\.(\d+)\.0\.to_qkv\.", r"\1_encoder.blocks.\2.attn.qkv."),
    (r"^(s[12])_encoder\.transformer\.layers\.(\d+)\.0\.to_out\.", r"\1_encoder.blocks.\2.attn.proj."),
    (r"^(s[12])_encoder\.transformer\.layers\.(\d+)\.1\.input_norm\.", r"\1_encoder.blocks.\2.norm2."),
    (r"^(s[12])_encoder\.transformer\.layers\.(\d+)\.1\.net\.0\.", r"\1_encoder.blocks.\2.mlp.fc1."),
    (r"^(s[12])_encoder\.transformer\.layers\.(\d+)\.1\.net\.3\.", r"\1_encoder.blocks.\2.mlp.fc2."),
    (r"^(s[12])_encoder\.transformer\.norm_out\.", r"\1_encoder.norm."),
    (r"^(s[12])_encoder\.linear_input\.", r"\1_encoder.linear_input."),
    (r"^(s[12])_GAP_FFN\.", r"\1_gap."),
    (r"^joint_encoder\.layers\.(\d+)\.0\.input_norm\.", r"joint_blocks.\1.norm1."),
    (r"^joint_encoder\.layers\.(\d+)\.0\.to_qkv\.", r"joint_blocks.\1.attn.qkv."),
    (r"^joint_encoder\.layers\.(\d+)\.0\.to_out\.", r"joint_blocks.\1.attn.proj."),
    (r"^joint_encoder\.layers\.(\d+)\.1\.input_norm\.", r"joint_blocks.\1.cross_attn.norm."),
    (r"^joint_encoder\.layers\.(\d+)\.1\.to_([qkv])\.", r"joint_blocks.\1.cross_attn.\2."),
    (r"^joint_encoder\.layers\.(\d+)\.1\.to_out\.", r"joint_blocks.\1.cross_attn.proj."),
    (r"^joint_encoder\.layers\.(\d+)\.2\.input_norm\.", r"joint_blocks.\1.norm2."),
    (r"^joint_encoder\.layers\.(\d+)\.2\.net\.0\.", r"joint_blocks.\1.mlp.fc1."),
    (r"^joint_encoder\.layers\.(\d+)\.2\.net\.3\.", r"joint_blocks.\1.mlp.fc2."),
    (r"^joint_encoder\.norm_out\.", r"joint_norm."),
]

_GROUPS = ("s1_encoder", "s1_GAP_FFN", "s2_encoder", "s2_GAP_FFN", "joint_encoder")


def convert_croma_checkpoint(ckpt: Mapping[str, Any], model: CROMA, source: str = "CROMA") -> dict[str, Tensor]:
    """Map an official CROMA checkpoint (dict of the five group state dicts, or already flat) to :class:`CROMA`.

    Groups the model's modality does not use are dropped (e.g. ``s1_*`` and ``joint_encoder`` for ``optical``).

    Raises:
        KeyError: On a key no rule maps, or when a group the model needs is absent (naming ``source``).
    """
    flat: dict[str, Tensor] = {}
    for key, value in ckpt.items():
        if key in _GROUPS:
            if not isinstance(value, Mapping):
                raise KeyError(f"{source}: group {key!r} is not a state dict")
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    needed = {"optical": ("s2_",), "sar": ("s1_",), "both": ("s1_", "s2_", "joint_")}[model.modality]
    out: dict[str, Tensor] = {}
    for key, value in flat.items():
        if not key.startswith(needed) or key.endswith("num_batches_tracked"):
            continue
        for pattern, repl in _RULES:
            new, n = re.subn(pattern, repl, key)
            if n:
                out[new] = value
                break
        else:
            raise KeyError(f"{source}: unexpected CROMA key {key!r} (expected the antofuller/CROMA layout)")
    missing = [k for k in model.state_dict() if k not in out]
    if missing:
        raise KeyError(f"{source}: CROMA checkpoint lacks {missing[:5]} for modality {model.modality!r}")
    return out
