"""Post-hoc width slimming of timm-style ViT blocks into physically smaller modules.

A width multiplier ``s`` keeps, in every transformer block, the first ``⌊s·d_h⌋`` MLP hidden units (rows of
``fc1``, columns of ``fc2``) and, per attention head, the first ``⌊s·d_k⌋`` dimensions of q, k and v (rows of
``qkv``) with the matching input columns of ``proj``. The ``heads`` mode instead keeps the first ``⌊s·H⌋`` whole
heads. The residual width, patch embedding, position embedding, norms and head are unchanged unless
``embed=True`` (residual-width variant, :mod:`rsim.slimming.residual`). Every module that is a timm ``Attention``,
``Mlp`` or ``GluMlp`` (anywhere in the model: timm ``VisionTransformer``, the CSMAE backbone, the loaders of
:mod:`rsim.slimming.models`), an attention exposing ``slimmed(idx, heads, dims, scale)`` (CROMA cross-attention),
a Soft-MoE layer (``rsim.csmoe``: every expert's hidden units), or a timm ResNet ``Bottleneck``/``BasicBlock``
(inner channels, :mod:`rsim.slimming.cnn`) is replaced by a smaller copy; the input model is left untouched.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from timm.layers import GluMlp, Mlp
from timm.models.vision_transformer import Attention
from torch import Tensor, nn

__all__ = [
    "PAPER_WIDTHS",
    "AttnScale",
    "SlicedAttention",
    "SlimMode",
    "SlimOrder",
    "attention_at_width",
    "attention_indices",
    "attention_scores",
    "blocks_at_width",
    "keep_count",
    "mlp_at_width",
    "slim",
    "slim_attention",
    "slim_mlp",
    "slim_soft_moe",
    "slimmable_modules",
]

SlimMode = Literal["width", "heads"]
AttnScale = Literal["sliced", "original"]
SlimOrder = Literal["prefix", "l1"]

#: Widths of the sweep [third-party formalisation of the paper's protocol].
PAPER_WIDTHS: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25, 0.1, 0.05, 0.025, 1 / 64)


def keep_count(n: int, s: float) -> int:
    """Units kept out of ``n`` at width ``s``: ``max(1, ⌊s·n⌋)`` (at least one unit per head/MLP)."""
    if not 0.0 < s <= 1.0:
        raise ValueError(f"width multiplier s must lie in (0, 1], got {s}")
    return max(1, min(n, math.floor(s * n + 1e-9)))


def _top(scores: Tensor, k: int, dim: int = -1) -> Tensor:
    """Indices of the ``k`` largest ``scores`` along ``dim``, in ascending index order."""
    return scores.topk(k, dim=dim).indices.sort(dim=dim).values


def attention_indices(
    num_heads: int, head_dim: int, s: float, mode: SlimMode = "width", scores: Tensor | None = None
) -> tuple[Tensor, int, int]:
    """Kept output-feature indices of one of q/k/v (``[H'·d_k']``), and ``(H', d_k')``.

    The same indices select the input columns of the output projection; ``qkv`` rows are these indices offset
    by ``0``, ``H·d_k`` and ``2·H·d_k``. Without ``scores`` the first dims / heads are kept (prefix order);
    with ``scores`` ``[H, d_k]`` the highest-scoring dims of every head (``width``) or heads (``heads``, summed).
    """
    if mode == "width":
        heads, dims = num_heads, keep_count(head_dim, s)
        per_head = torch.arange(dims).expand(heads, dims) if scores is None else _top(scores.float().cpu(), dims)
        idx = torch.arange(heads)[:, None] * head_dim + per_head
    elif mode == "heads":
        heads, dims = keep_count(num_heads, s), head_dim
        kept = torch.arange(heads) if scores is None else _top(scores.float().cpu().sum(1), heads)
        idx = kept[:, None] * head_dim + torch.arange(dims)[None, :]
    else:
        raise ValueError(f"mode must be 'width' or 'heads', got {mode!r}")
    return idx.reshape(-1), heads, dims


def attention_scores(qkv_weight: Tensor, proj_weight: Tensor, num_heads: int, head_dim: int) -> Tensor:
    """L1 importance ``[H, d_k]`` of every head dimension: ``|·|`` summed over its q, k, v rows and proj column."""
    qkv = qkv_weight.detach().abs().reshape(-1, num_heads, head_dim, qkv_weight.shape[-1]).sum(dim=(0, 3))
    return qkv + proj_weight.detach().abs().reshape(-1, num_heads, head_dim).sum(0)


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
        source_heads: int | None = None,
        kept_heads: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.qkv, self.proj = qkv, proj
        self.num_heads, self.head_dim, self.scale = num_heads, head_dim, scale
        self.source_heads = source_heads or num_heads  # heads of the full model (per-head masks are cut to match)
        self.kept_heads = (kept_heads if kept_heads is not None else torch.arange(num_heads)).tolist()
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, **_: object) -> Tensor:
        """Self-attention over ``x`` ``[B, N, D]``; returns ``[B, N, D]``."""
        b, n, _d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if attn_mask is not None and attn_mask.dim() == 4 and attn_mask.shape[1] == self.source_heads != self.num_heads:
            attn_mask = attn_mask[:, self.kept_heads]  # per-head bias (CROMA ALiBi) of the kept heads
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


def _check_order(order: str) -> None:
    if order not in ("prefix", "l1"):
        raise ValueError(f"order must be 'prefix' or 'l1', got {order!r}")


def slim_attention(
    attn: Attention, s: float, mode: SlimMode = "width", attn_scale: AttnScale = "sliced", order: SlimOrder = "prefix"
) -> nn.Module:
    """A physically smaller copy of a timm ``Attention`` at width ``s`` (see module docstring).

    Args:
        attn: The full attention module (not modified).
        s: Width multiplier in (0, 1].
        mode: ``width`` (``⌊s·d_k⌋`` dims of every head) or ``heads`` (``⌊s·H⌋`` heads).
        attn_scale: ``sliced`` uses ``d_k'^-1/2`` [assumption]; ``original`` keeps the full model's scale.
        order: ``prefix`` keeps the first dims/heads [third-party formalisation]; ``l1`` the ones with the largest
            L1 weight norm (:func:`attention_scores`) [assumption: importance baseline].
    """
    _check_plain_attention(attn)
    _check_order(order)
    num_heads, head_dim = int(attn.num_heads), int(attn.head_dim)
    inner = num_heads * head_dim
    scores = attention_scores(attn.qkv.weight, attn.proj.weight, num_heads, head_dim) if order == "l1" else None
    idx, heads, dims = attention_indices(num_heads, head_dim, s, mode, scores)
    idx = idx.to(attn.qkv.weight.device)
    rows = torch.cat([idx, idx + inner, idx + 2 * inner])
    qkv_bias = attn.qkv.bias[rows] if attn.qkv.bias is not None else None
    qkv = _linear(attn.qkv.weight[rows], qkv_bias)
    proj = _linear(attn.proj.weight[:, idx], attn.proj.bias)
    scale = float(attn.scale) if attn_scale == "original" else dims**-0.5
    if attn_scale not in ("sliced", "original"):
        raise ValueError(f"attn_scale must be 'sliced' or 'original', got {attn_scale!r}")
    kept = idx.view(heads, dims)[:, 0].cpu() // head_dim
    return SlicedAttention(qkv, proj, heads, dims, scale, attn.attn_drop.p, attn.proj_drop.p, num_heads, kept)


def _slim_protocol_attention(
    attn: nn.Module, s: float, mode: SlimMode, attn_scale: AttnScale, order: SlimOrder = "prefix"
) -> nn.Module:
    """Attention modules exposing ``slimmed(idx, heads, dims, scale)`` (and ``unit_scores()`` for ``l1``)."""
    num_heads, head_dim = int(attn.num_heads), int(attn.head_dim)  # type: ignore[arg-type]
    scores = attn.unit_scores() if order == "l1" else None  # type: ignore[operator]
    idx, heads, dims = attention_indices(num_heads, head_dim, s, mode, scores)
    scale = float(attn.scale) if attn_scale == "original" else dims**-0.5  # type: ignore[arg-type]
    return attn.slimmed(idx, heads, dims, scale)  # type: ignore[operator]


def slim_mlp(mlp: Mlp | GluMlp, s: float, order: SlimOrder = "prefix") -> Mlp | GluMlp:
    """A physically smaller copy of a timm ``Mlp``: the first ``⌊s·d_h⌋`` hidden units.

    For a ``GluMlp`` (``fc1`` = [value | gate] halves) the same ``⌊s·d_h⌋`` units of each half are kept. With
    ``order='l1'`` the units of largest L1 norm (``fc1`` rows, both GLU halves, + ``fc2`` columns) instead.
    """
    _check_order(order)
    if not isinstance(mlp.norm, nn.Identity):
        raise NotImplementedError("slimming a timm Mlp with a hidden-layer norm is not supported")
    fc1, fc2 = mlp.fc1, mlp.fc2
    if not isinstance(fc1, nn.Linear) or not isinstance(fc2, nn.Linear):
        raise NotImplementedError(f"slimming needs Linear fc1/fc2, got {type(fc1).__name__}/{type(fc2).__name__}")
    hidden = fc2.in_features
    keep = keep_count(hidden, s)
    units = torch.arange(keep)
    if order == "l1":
        w1 = fc1.weight.detach().abs().sum(1)
        score = (w1[:hidden] + w1[hidden:] if isinstance(mlp, GluMlp) else w1) + fc2.weight.detach().abs().sum(0)
        units = _top(score.float().cpu(), keep)
    units = units.to(fc1.weight.device)
    rows = torch.cat([units, units + hidden]) if isinstance(mlp, GluMlp) else units
    out = copy.deepcopy(mlp)
    out.fc1 = _linear(fc1.weight[rows], None if fc1.bias is None else fc1.bias[rows])
    out.fc2 = _linear(fc2.weight[:, units], fc2.bias)
    return out


def _is_soft_moe(module: nn.Module) -> bool:
    """Soft-MoE expert MLPs in the ``rsim.csmoe.SoftMoE`` layout (batched ``fc1_weight [n, d, h]``, ...)."""
    w1, w2 = getattr(module, "fc1_weight", None), getattr(module, "fc2_weight", None)
    return isinstance(w1, Tensor) and isinstance(w2, Tensor) and w1.dim() == 3 and hasattr(module, "hidden_dim")


def slim_soft_moe(moe: nn.Module, s: float, order: SlimOrder = "prefix") -> nn.Module:
    """A smaller copy of a Soft-MoE layer: every expert keeps its first ``⌊s·h⌋`` hidden units.

    Routing (``phi``, slots, dispatch/combine weights) is unchanged [assumption: the expert MLPs are the MoE
    analogue of the block MLP]. ``order='l1'``: the same units for all experts, ranked by L1 norm summed over them.
    """
    _check_order(order)
    out = copy.deepcopy(moe)
    w1: Tensor = moe.fc1_weight  # type: ignore[assignment]
    w2: Tensor = moe.fc2_weight  # type: ignore[assignment]
    hidden = int(moe.hidden_dim)  # type: ignore[arg-type]
    keep = keep_count(hidden, s)
    units = torch.arange(keep)
    if order == "l1":
        units = _top((w1.detach().abs().sum((0, 1)) + w2.detach().abs().sum((0, 2))).float().cpu(), keep)
    units = units.to(w1.device)
    with torch.no_grad():
        out.fc1_weight = nn.Parameter(w1[:, :, units].clone())
        out.fc2_weight = nn.Parameter(w2[:, units, :].clone())
        if getattr(moe, "fc1_bias", None) is not None:
            out.fc1_bias = nn.Parameter(moe.fc1_bias[:, units].clone())  # type: ignore[index]
    setattr(out, "hidden_dim", keep)  # noqa: B010
    return out


def _is_protocol_attention(module: nn.Module) -> bool:
    return callable(getattr(module, "slimmed", None)) and hasattr(module, "num_heads") and hasattr(module, "head_dim")


def slimmable_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """The modules of ``model`` that :func:`slim` replaces (name, module), outermost first, none nested."""
    from rsim.slimming.cnn import CNN_BLOCKS

    taken: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(t + ".") for t in taken):
            continue
        if (
            isinstance(module, (Attention, Mlp, GluMlp, *CNN_BLOCKS))
            or _is_protocol_attention(module)
            or _is_soft_moe(module)
        ):
            taken.append(name)
            yield name, module


def slim(
    model: nn.Module,
    s: float,
    mode: SlimMode = "width",
    attn_scale: AttnScale = "sliced",
    embed: bool = False,
    order: SlimOrder = "prefix",
) -> nn.Module:
    """Return a physically slimmed copy of ``model`` at width ``s``; ``model`` itself is not modified.

    Every timm ``Attention``/``Mlp``/``GluMlp``, protocol attention and timm ResNet block is replaced. In ``heads``
    mode the MLP is sliced to ``⌊s·d_h⌋`` as in ``width`` mode (only attention differs). With ``embed=True`` the
    residual width ``D`` is also cut to ``⌊s·D⌋`` (FLOPs ∝ s², :func:`rsim.slimming.residual.slim_residual`;
    ViT-style encoders only) [assumption: dossier option ``slim_embed``, off by default]. ``order='l1'`` keeps the
    units/heads/channels of largest L1 weight norm (CNNs: largest BatchNorm ``|γ|``) instead of the first ones
    [assumption: importance baseline, dossier open question 2]; the residual cut stays a prefix. At ``s = 1`` the
    copy computes exactly the same function.

    Raises:
        ValueError: If ``model`` holds no module that can be slimmed.
    """
    from rsim.slimming.cnn import CNN_BLOCKS, slim_cnn_block

    keep_count(1, s)  # validates s
    _check_order(order)
    if attn_scale not in ("sliced", "original"):
        raise ValueError(f"attn_scale must be 'sliced' or 'original', got {attn_scale!r}")
    targets = dict(slimmable_modules(model))
    if not targets:
        raise ValueError(f"{type(model).__name__} has no timm Attention/Mlp (or ResNet block) modules to slim")
    out = copy.deepcopy(model)
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = out.get_submodule(parent_name) if parent_name else out
        module = getattr(parent, child)
        if isinstance(module, Attention):
            setattr(parent, child, slim_attention(module, s, mode, attn_scale, order))
        elif isinstance(module, Mlp | GluMlp):
            setattr(parent, child, slim_mlp(module, s, order))
        elif isinstance(module, CNN_BLOCKS):
            setattr(parent, child, slim_cnn_block(module, s, order))
        elif _is_soft_moe(module):
            setattr(parent, child, slim_soft_moe(module, s, order))
        else:
            setattr(parent, child, _slim_protocol_attention(module, s, mode, attn_scale, order))
    if embed:
        from rsim.slimming.residual import slim_residual

        out = slim_residual(out, s, copy_model=False)
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
        if not isinstance(block.mlp, Mlp):
            raise NotImplementedError(f"width-conditional training supports timm Mlp blocks, got {type(block.mlp)}")
        if s >= 1.0:
            x = block(x)
            continue
        x = x + block.drop_path1(block.ls1(attention_at_width(block.attn, block.norm1(x), s, mode)))
        x = x + block.drop_path2(block.ls2(mlp_at_width(block.mlp, block.norm2(x), s)))
    return x
