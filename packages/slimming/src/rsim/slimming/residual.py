"""Residual-width (embedding-dimension) slimming: keep the first ``⌊s·D⌋`` channels of the residual stream.

The dossier's formalisation leaves ``D`` unchanged (open question 7, option ``slim_embed: false``); with ``D`` fixed
the smallest width 1/64 still costs 1.56 % of the block FLOPs, so the paper's "1 % FLOPs" point is unreachable.
This variant also cuts ``D`` [assumption], making linear-layer FLOPs ∝ s² (1 % near s ≈ 0.1 for ViT-B/16).

Sliced, per supported encoder: the patch embedding's output channels (conv/linear/DOFA's generated kernel), cls /
register tokens and position table (last dim), every LayerNorm over ``D`` in the trunk, the attention ``qkv``
input columns and ``proj`` output rows (also CROMA cross-attention q/k/v/proj), MLP ``fc1`` input columns and
``fc2`` output rows, LayerScale ``gamma``, and the input columns of a linear head (CROMA: the GAP feed-forward's
first layer, whose output layer is cut to ``⌊s·D⌋`` rows). LayerNorms then normalise over the kept channels only.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from rsim.slimming.models.croma import CROMA, CromaCrossAttention, CromaViT
from rsim.slimming.models.dofa import DOFAEmbedding, DOFAEncoder
from rsim.slimming.models.foundation import PrithviEncoder
from rsim.slimming.slim import SlicedAttention, _is_soft_moe, keep_count
from timm.layers import GluMlp, LayerScale, Mlp
from timm.models.vision_transformer import Attention, VisionTransformer
from torch import Tensor, nn

__all__ = ["residual_width", "slim_residual"]


def _lin(layer: nn.Linear, rows: int | None = None, cols: int | None = None) -> nn.Linear:
    w = layer.weight[: rows or layer.out_features, : cols or layer.in_features]
    new = nn.Linear(w.shape[1], w.shape[0], bias=layer.bias is not None, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if layer.bias is not None:
            new.bias.copy_(layer.bias[: w.shape[0]])
    return new


def _conv_out(conv: nn.Module, keep: int) -> nn.Module:
    assert isinstance(conv, nn.Conv2d | nn.Conv3d)
    new = copy.deepcopy(conv)
    new.out_channels = keep
    with torch.no_grad():
        new.weight = nn.Parameter(conv.weight[:keep].clone())
        if conv.bias is not None:
            new.bias = nn.Parameter(conv.bias[:keep].clone())
    return new


def _norm(norm: nn.LayerNorm, keep: int) -> nn.LayerNorm:
    new = nn.LayerNorm(keep, eps=norm.eps, elementwise_affine=norm.elementwise_affine, bias=norm.bias is not None)
    new = new.to(norm.weight.device if norm.weight is not None else "cpu")
    with torch.no_grad():
        if norm.weight is not None:
            new.weight.copy_(norm.weight[:keep])
        if norm.bias is not None:
            new.bias.copy_(norm.bias[:keep])
    return new


def _param(module: nn.Module, name: str, keep: int) -> None:
    p = getattr(module, name, None)
    if isinstance(p, Tensor) and p.numel():
        setattr(module, name, nn.Parameter(p[..., :keep].clone(), requires_grad=p.requires_grad))


def residual_width(model: nn.Module) -> int:
    """The residual width ``D`` of a supported encoder."""
    dim = getattr(model, "embed_dim", None)
    if isinstance(dim, int):
        return dim
    raise TypeError(f"residual-width slimming does not support {type(model).__name__} (no embed_dim)")


def _set(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def _trunk(model: nn.Module, d: int, keep: int, skip: tuple[str, ...]) -> None:
    """Slice every residual-stream consumer/producer inside the trunk (everything not under ``skip``)."""
    for name, m in list(model.named_modules()):
        if not name or name.startswith(skip):
            continue
        if isinstance(m, nn.LayerNorm) and tuple(m.normalized_shape) == (d,):
            _set(model, name, _norm(m, keep))
        elif isinstance(m, Attention | SlicedAttention):
            if isinstance(m, Attention) and not isinstance(getattr(m, "norm", nn.Identity()), nn.Identity):
                raise NotImplementedError("residual slimming of attention with an output norm is not supported")
            m.qkv = _lin(m.qkv, cols=keep)
            m.proj = _lin(m.proj, rows=keep)
        elif isinstance(m, CromaCrossAttention):
            m.q, m.k, m.v = (_lin(layer, cols=keep) for layer in (m.q, m.k, m.v))
            m.proj = _lin(m.proj, rows=keep)
        elif isinstance(m, Mlp | GluMlp):
            m.fc1 = _lin(m.fc1, cols=keep)  # type: ignore[arg-type]
            m.fc2 = _lin(m.fc2, rows=keep)  # type: ignore[arg-type]
        elif isinstance(m, LayerScale):
            _param(m, "gamma", keep)
        elif _is_soft_moe(m):  # rsim.csmoe SoftMoE: phi [d, n, p], fc1 [n, d, h], fc2 [n, h, d], fc2_bias [n, d]
            moe: Any = m
            moe.phi = nn.Parameter(moe.phi[:keep].clone())
            moe.fc1_weight = nn.Parameter(moe.fc1_weight[:, :keep].clone())
            _param(moe, "fc2_weight", keep)
            _param(moe, "fc2_bias", keep)
            moe.dim = keep


def slim_residual(model: nn.Module, s: float, copy_model: bool = True) -> nn.Module:
    """Cut the residual width ``D`` of a timm ViT, DOFA, Prithvi, CROMA or CSMAE/CSMoE encoder to ``⌊s·D⌋``.

    Any other encoder with ``embed_dim``, ``patch_embed*.proj`` convolutions, ``cls_token*``/``pos_embed``
    parameters and timm/Soft-MoE blocks is handled the same way (see module doc).

    Compose with per-head/MLP slimming through ``slim(model, s, embed=True)``.

    Raises:
        TypeError: For unsupported models (e.g. CNNs, CSMAE, timm ViTs with an attention-pool head).
    """
    out = copy.deepcopy(model) if copy_model else model
    d = residual_width(out)
    keep = keep_count(d, s)
    if keep == d:
        return out
    mod: Any = out
    if isinstance(out, VisionTransformer):
        if out.attn_pool is not None:
            raise TypeError("residual-width slimming of a timm ViT with an attention-pool head is not supported")
        mod.patch_embed.proj = _conv_out(out.patch_embed.proj, keep)
        _trunk(out, d, keep, skip=("head",))
        for name in ("cls_token", "reg_token", "pos_embed"):
            _param(out, name, keep)
        if isinstance(out.head, nn.Linear):
            mod.head = _lin(out.head, cols=keep)
        mod.embed_dim = mod.num_features = mod.head_hidden_size = keep
    elif isinstance(out, PrithviEncoder):
        mod.patch_embed.proj = _conv_out(mod.patch_embed.proj, keep)
        _trunk(out, d, keep, skip=("patch_embed",))
        _param(out, "cls_token", keep)
        out.pos_embed = nn.Parameter(out.pos_embed[..., :keep].clone(), requires_grad=False)
        mod.embed_dim = keep
    elif isinstance(out, DOFAEncoder):
        embed: DOFAEmbedding = out.patch_embed
        mod.patch_embed = embed.slim_output(keep)
        _trunk(out, d, keep, skip=("patch_embed",))
        _param(out, "cls_token", keep)
        out.pos_embed = nn.Parameter(out.pos_embed[..., :keep].clone(), requires_grad=False)
        mod.embed_dim = keep
    elif isinstance(out, CROMA):
        for enc_name in ("s1_encoder", "s2_encoder"):
            enc = getattr(out, enc_name, None)
            if isinstance(enc, CromaViT):
                enc.linear_input = _lin(enc.linear_input, rows=keep)
        for gap_name in ("s1_gap", "s2_gap"):
            gap = getattr(out, gap_name, None)
            if isinstance(gap, nn.Sequential):
                gap[1] = _lin(gap[1], cols=keep)  # type: ignore[arg-type]
                gap[3] = _lin(gap[3], rows=keep)  # type: ignore[arg-type]
        _trunk(out, d, keep, skip=())  # the GAP LayerNorms over D are part of the trunk walk
        mod.embed_dim = keep
    else:  # generic ViT-like encoder, e.g. rsim.csmoe's CrossSensorViT: conv patch embeddings named patch_embed*
        embeds = [
            name
            for name, child in out.named_children()
            if name.startswith("patch_embed") and isinstance(getattr(child, "proj", None), nn.Conv2d)
        ]
        if not embeds or any(isinstance(m, nn.BatchNorm2d) for m in out.modules()):
            raise TypeError(f"residual-width slimming does not support {type(out).__name__}")
        for name in embeds:
            child: Any = getattr(out, name)
            child.proj = _conv_out(child.proj, keep)
        _trunk(out, d, keep, skip=tuple(embeds))
        for name, _p in list(out.named_parameters(recurse=False)):
            if name.startswith(("cls_token", "reg_token", "pos_embed")):
                _param(out, name, keep)
        mod.embed_dim = keep
    return out
