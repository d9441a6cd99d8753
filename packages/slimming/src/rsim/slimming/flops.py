"""FLOP counting: measured with ``torch.utils.flop_counter.FlopCounterMode`` and an analytic count for timm ViTs.

FLOPs = 2 × multiply-accumulates of matmuls and convolutions (biases, norms, softmax and activations are not
counted, as in ``FlopCounterMode``). ``scope="blocks"`` counts only the transformer blocks (attention + MLP);
``scope="total"`` counts the whole forward (patch embedding and head included) [assumption: the paper's scope is
unknown, both are reported]. "Blocks" are timm ``Block``s (also DOFA/Prithvi/CROMA), CROMA joint-encoder layers
and timm ResNet ``Bottleneck``/``BasicBlock`` (shortcut included).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from rsim.slimming.slim import SlimMode, keep_count
from timm.models.vision_transformer import Block, VisionTransformer
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["FlopsScope", "measure_flops", "vit_flops"]

FlopsScope = Literal["blocks", "total"]


def measure_flops(model: nn.Module, x: Tensor, scope: FlopsScope = "total") -> int:
    """FLOPs of ``model(x)`` measured by ``FlopCounterMode`` (``blocks``: inside timm ``Block`` modules only)."""
    if scope not in ("blocks", "total"):
        raise ValueError(f"scope must be 'blocks' or 'total', got {scope!r}")
    counter = FlopCounterMode(display=False)
    block_flops = [0]
    handles = []
    if scope == "blocks":
        state: dict[str, int] = {}

        def pre(_m: nn.Module, _a: object) -> None:
            state["start"] = counter.get_total_flops()

        def post(_m: nn.Module, _a: object, _o: object) -> None:
            block_flops[0] += counter.get_total_flops() - state["start"]

        from rsim.slimming.cnn import CNN_BLOCKS
        from rsim.slimming.models.croma import CromaCrossBlock

        for m in model.modules():
            if isinstance(m, (Block, CromaCrossBlock, *CNN_BLOCKS)):
                handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        for h in handles:
            h.remove()
    return block_flops[0] if scope == "blocks" else int(counter.get_total_flops())


def vit_flops(
    model: VisionTransformer,
    s: float = 1.0,
    mode: SlimMode = "width",
    scope: FlopsScope = "total",
    batch: int = 1,
    embed: bool = False,
) -> int:
    """Analytic FLOPs of a (full-size) timm ``VisionTransformer`` slimmed to width ``s``, for one image batch.

    Counts qkv, q·kᵀ, attention·v, output projection, fc1 and fc2 per block; with ``total`` also the patch
    embedding and a linear head. ``embed=True``: the residual width is cut to ``⌊s·D⌋`` too.
    """
    patch = model.patch_embed
    n_patches = int(patch.num_patches)
    tokens = n_patches + int(getattr(model, "num_prefix_tokens", 1))
    dim = keep_count(int(model.embed_dim), s) if embed else int(model.embed_dim)
    total = 0
    for block in model.blocks:
        if not isinstance(block, Block):
            raise TypeError(f"vit_flops expects timm Block modules, got {type(block).__name__}")
        attn: Any = block.attn
        heads, head_dim = int(attn.num_heads), int(attn.head_dim)
        if mode == "width":
            inner = heads * keep_count(head_dim, s)
        else:
            inner = keep_count(heads, s) * head_dim
        mlp: Any = block.mlp
        hidden = keep_count(int(mlp.fc1.out_features), s)
        macs = tokens * dim * 3 * inner + 2 * tokens * tokens * inner + tokens * inner * dim
        macs += 2 * tokens * dim * hidden
        total += 2 * macs
    if scope == "total":
        proj = patch.proj
        assert isinstance(proj, nn.Conv2d)
        total += 2 * n_patches * proj.in_channels * proj.kernel_size[0] * proj.kernel_size[1] * dim
        head = model.head
        if isinstance(head, nn.Linear):
            total += 2 * dim * head.out_features
    return total * batch
