"""Post-hoc width slimming of timm-style ViT blocks into physically smaller modules.

A width multiplier ``s`` keeps, in every transformer block, the first ``⌊s·d_h⌋`` MLP hidden units (rows of
``fc1``, columns of ``fc2``) and, per attention head, the first ``⌊s·d_k⌋`` dimensions of q, k and v (rows of
``qkv``) with the matching input columns of ``proj``. The ``heads`` mode instead keeps the first ``⌊s·H⌋`` whole
heads. The residual width, patch embedding, position embedding, norms and head are unchanged. Every module that
is a timm ``Attention`` or ``Mlp`` (anywhere in the model: timm ``VisionTransformer``, the CSMAE backbone, the
loaders of :mod:`rsim.slimming.models`) is replaced by a smaller copy; the input model is left untouched.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from timm.models.vision_transformer import Attention
from torch import Tensor, nn

__all__ = [
    "PAPER_WIDTHS",
    "AttnScale",
    "SlicedAttention",
    "SlimMode",
    "attention_at_width",
    "attention_indices",
    "blocks_at_width",
    "keep_count",
    "mlp_at_width",
    "slim",
    "slim_attention",
    "slim_mlp",
    "slimmable_modules",
]

SlimMode = Literal["width", "heads"]
AttnScale = Literal["sliced", "original"]

#: Widths of the sweep [third-party formalisation of the paper's protocol].
PAPER_WIDTHS: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25, 0.1, 0.05, 0.025, 1 / 64)


def keep_count(n: int, s: float) -> int:
    """Units kept out of ``n`` at width ``s``: ``max(1, ⌊s·n⌋)`` (at least one unit per head/MLP)."""
    if not 0.0 < s <= 1.0:
        raise ValueError(f"width multiplier s must lie in (0, 1], got {s}")
    return max(1, min(n, math.floor(s * n + 1e-9)))


def attention_indices(num_heads: int, head_dim: int, s: float, mode: SlimMode = "width") -> tuple[Tensor, int, int]:
    """Kept output-feature indices of one of q/k/v (``[H'·d_k']``), and ``(H', d_k')``.

    The same indices select the input columns of the output projection; ``qkv`` rows are these indices offset
    by ``0``, ``H·d_k`` and ``2·H·d_k``.
    """
    if mode == "width":
        heads, dims = num_heads, keep_count(head_dim, s)
    elif mode == "heads":
        heads, dims = keep_count(num_heads, s), head_dim
    else:
        raise ValueError(f"mode must be 'width' or 'heads', got {mode!r}")
    idx = (torch.arange(heads)[:, None] * head_dim + torch.arange(dims)[None, :]).reshape(-1)
    return idx, heads, dims


def _linear(weight: Tensor, bias: Tensor | None) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


class SlicedAttention(nn.Module):
    """Multi-head self-attention with ``num_heads`` heads of ``head_dim`` dims each, in width ``dim``.

    Keeps the timm key names (``qkv``, ``proj``) so slimmed state dicts stay readable.
    """

    def __init__(
        self,
        qkv: nn.Linear,
        proj: nn.Linear,
        num_heads: int,
        head_dim: int,
        scale: float,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.qkv, self.proj = qkv, proj
        self.num_heads, self.head_dim, self.scale = num_heads, head_dim, scale
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, **_: object) -> Tensor:
        """Self-attention over ``x`` ``[B, N, D]``; returns ``[B, N, D]``."""
        b, n, _d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attn_drop.p if self.training else 0.0, scale=self.scale
        )
        out = out.transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim)
        return self.proj_drop(self.proj(out))


def _check_plain_attention(attn: Attention) -> None:
    for name in ("q_norm", "k_norm", "norm"):
        if not isinstance(getattr(attn, name, nn.Identity()), nn.Identity):
            raise NotImplementedError(f"slimming timm Attention with a non-identity {name!r} is not supported")
    if getattr(attn, "gate", None) is not None:
        raise NotImplementedError("slimming gated timm Attention is not supported")


def slim_attention(attn: Attention, s: float, mode: SlimMode = "width", attn_scale: AttnScale = "sliced") -> nn.Module:
    """A physically smaller copy of a timm ``Attention`` at width ``s`` (see module docstring).

    Args:
        attn: The full attention module (not modified).
        s: Width multiplier in (0, 1].
        mode: ``width`` (first ``⌊s·d_k⌋`` dims of every head) or ``heads`` (first ``⌊s·H⌋`` heads).
        attn_scale: ``sliced`` uses ``d_k'^-1/2`` [assumption]; ``original`` keeps the full model's scale.
    """
    _check_plain_attention(attn)
    num_heads, head_dim = int(attn.num_heads), int(attn.head_dim)
    inner = num_heads * head_dim
    idx, heads, dims = attention_indices(num_heads, head_dim, s, mode)
    idx = idx.to(attn.qkv.weight.device)
    rows = torch.cat([idx, idx + inner, idx + 2 * inner])
    qkv_bias = attn.qkv.bias[rows] if attn.qkv.bias is not None else None
    qkv = _linear(attn.qkv.weight[rows], qkv_bias)
    proj = _linear(attn.proj.weight[:, idx], attn.proj.bias)
    scale = float(attn.scale) if attn_scale == "original" else dims**-0.5
    if attn_scale not in ("sliced", "original"):
        raise ValueError(f"attn_scale must be 'sliced' or 'original', got {attn_scale!r}")
    return SlicedAttention(qkv, proj, heads, dims, scale, attn.attn_drop.p, attn.proj_drop.p)


def slim_mlp(mlp: Mlp, s: float) -> Mlp:
    """A physically smaller copy of a timm ``Mlp``: the first ``⌊s·d_h⌋`` hidden units."""
    if not isinstance(mlp.norm, nn.Identity):
        raise NotImplementedError("slimming a timm Mlp with a hidden-layer norm is not supported")
    fc1, fc2 = mlp.fc1, mlp.fc2
    if not isinstance(fc1, nn.Linear) or not isinstance(fc2, nn.Linear):
        raise NotImplementedError(f"slimming needs Linear fc1/fc2, got {type(fc1).__name__}/{type(fc2).__name__}")
    keep = keep_count(fc1.out_features, s)
    out = copy.deepcopy(mlp)
    out.fc1 = _linear(fc1.weight[:keep], None if fc1.bias is None else fc1.bias[:keep])
    out.fc2 = _linear(fc2.weight[:, :keep], fc2.bias)
    return out


def slimmable_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """The timm ``Attention`` and ``Mlp`` modules of ``model`` that :func:`slim` replaces (name, module)."""
    for name, module in model.named_modules():
        if isinstance(module, Attention | Mlp):
            yield name, module


def slim(model: nn.Module, s: float, mode: SlimMode = "width", attn_scale: AttnScale = "sliced") -> nn.Module:
    """Return a physically slimmed copy of ``model`` at width ``s``; ``model`` itself is not modified.

    Every timm ``Attention`` and ``Mlp`` is replaced. In ``heads`` mode the MLP is sliced to ``⌊s·d_h⌋`` as in
    ``width`` mode (only attention differs). At ``s = 1`` the copy computes exactly the same function.

    Raises:
        ValueError: If ``model`` holds no timm ``Attention``/``Mlp`` (it is not a timm-style ViT).
    """
    targets = dict(slimmable_modules(model))
    if not targets:
        raise ValueError(f"{type(model).__name__} has no timm Attention/Mlp modules to slim")
    out = copy.deepcopy(model)
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = out.get_submodule(parent_name) if parent_name else out
        module = getattr(parent, child)
        if isinstance(module, Attention):
            setattr(parent, child, slim_attention(module, s, mode, attn_scale))
        else:
            setattr(parent, child, slim_mlp(module, s))
    return out


# -- width-conditional forward on the full weights (slimmable training) ----------------------------------------
def attention_at_width(attn: Attention, x: Tensor, s: float, mode: SlimMode = "width") -> Tensor:
    """Timm ``Attention`` evaluated at width ``s`` on sliced views of its full weights (gradients reach them).

    Computes the same function as ``slim_attention(attn, s, mode)`` with ``attn_scale='sliced'``.
    """
    _check_plain_attention(attn)
    num_heads, head_dim = int(attn.num_heads), int(attn.head_dim)
    inner = num_heads * head_dim
    idx, heads, dims = attention_indices(num_heads, head_dim, s, mode)
    idx = idx.to(x.device)
    rows = torch.cat([idx, idx + inner, idx + 2 * inner])
    b, n, _ = x.shape
    bias = attn.qkv.bias[rows] if attn.qkv.bias is not None else None
    qkv = F.linear(x, attn.qkv.weight[rows], bias).reshape(b, n, 3, heads, dims).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    p = attn.attn_drop.p if attn.training else 0.0
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, scale=dims**-0.5)
    out = out.transpose(1, 2).reshape(b, n, heads * dims)
    return attn.proj_drop(F.linear(out, attn.proj.weight[:, idx], attn.proj.bias))


def mlp_at_width(mlp: Mlp, x: Tensor, s: float) -> Tensor:
    """Timm ``Mlp`` evaluated with its first ``⌊s·d_h⌋`` hidden units (same function as :func:`slim_mlp`)."""
    fc1, fc2 = mlp.fc1, mlp.fc2
    assert isinstance(fc1, nn.Linear) and isinstance(fc2, nn.Linear)
    keep = keep_count(fc1.out_features, s)
    h = F.linear(x, fc1.weight[:keep], None if fc1.bias is None else fc1.bias[:keep])
    h = mlp.norm(mlp.drop1(mlp.act(h)))
    return mlp.drop2(F.linear(h, fc2.weight[:, :keep], fc2.bias))


def blocks_at_width(blocks: nn.Module, x: Tensor, s: float, mode: SlimMode = "width") -> Tensor:
    """Run a sequence of timm ``Block`` modules at width ``s`` (``s = 1`` calls the blocks unchanged)."""
    for block in blocks:  # type: ignore[attr-defined]
        if s >= 1.0:
            x = block(x)
            continue
        x = x + block.drop_path1(block.ls1(attention_at_width(block.attn, block.norm1(x), s, mode)))
        x = x + block.drop_path2(block.ls2(mlp_at_width(block.mlp, block.norm2(x), s)))
    return x
