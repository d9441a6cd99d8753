"""Channel slimming of ResNet-style CNN backbones (timm ``Bottleneck`` / ``BasicBlock``), same API as ViTs.

At width ``s`` every residual block keeps the first ``⌊s·c⌋`` of its inner channels: in a ``Bottleneck`` the output
channels of ``conv1``/``bn1`` and ``conv2``/``bn2`` and the matching input channels of ``conv2``/``conv3``; in a
``BasicBlock`` the output of ``conv1``/``bn1`` and the input of ``conv2``. The block's output (residual) width, the
stem, the shortcut (``downsample``) and the head are unchanged — the CNN analogue of slicing MLP hidden units
[assumption: the dossier's "slice conv output channels of inner bottleneck layers"; the paper's CNN handling is
unknown]. FLOPs of ``conv1``/``conv3`` scale with ``s`` and of the 3×3 ``conv2`` with ``s²``. BatchNorm running
statistics are sliced with their channels, so in eval mode ``s = 1`` is exactly the original network.
"""

from __future__ import annotations

import copy

import torch
from timm.models.resnet import BasicBlock, Bottleneck
from torch import Tensor, nn

__all__ = ["CNN_BLOCKS", "slim_batchnorm", "slim_cnn_block", "slim_conv"]

CNN_BLOCKS = (Bottleneck, BasicBlock)


def slim_conv(conv: nn.Conv2d, out_idx: Tensor | None = None, in_idx: Tensor | None = None) -> nn.Conv2d:
    """A smaller copy of ``conv`` keeping output channels ``out_idx`` and input channels ``in_idx`` (all if None)."""
    if conv.groups != 1:
        raise NotImplementedError(f"slimming grouped convolutions (groups={conv.groups}) is not supported")
    dev = conv.weight.device
    out_i = torch.arange(conv.out_channels) if out_idx is None else out_idx
    in_i = torch.arange(conv.in_channels) if in_idx is None else in_idx
    new = copy.deepcopy(conv)
    new.out_channels, new.in_channels = len(out_i), len(in_i)
    with torch.no_grad():
        new.weight = nn.Parameter(conv.weight[out_i.to(dev)][:, in_i.to(dev)].clone())
        if conv.bias is not None:
            new.bias = nn.Parameter(conv.bias[out_i.to(dev)].clone())
    return new


def slim_batchnorm(bn: nn.BatchNorm2d, idx: Tensor) -> nn.BatchNorm2d:
    """A copy of ``bn`` for channels ``idx`` (affine parameters and running statistics)."""
    new = copy.deepcopy(bn)
    new.num_features = len(idx)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            t = getattr(bn, name)
            if t is None:
                continue
            kept = t[idx.to(t.device)].clone()
            if isinstance(t, nn.Parameter):
                setattr(new, name, nn.Parameter(kept, requires_grad=t.requires_grad))
            else:
                setattr(new, name, kept)
    return new


def _channels(bn: nn.BatchNorm2d, keep: int, order: str) -> Tensor:
    """Prefix channels, or (``l1``) the ``keep`` channels of largest ``|γ|`` (network-slimming criterion)."""
    if order == "prefix" or bn.weight is None:
        return torch.arange(keep)
    return bn.weight.detach().abs().float().cpu().topk(keep).indices.sort().values


def _check(block: nn.Module) -> None:
    for name in ("se", "aa", "drop_block"):
        sub = getattr(block, name, None)
        if sub is not None and not isinstance(sub, nn.Identity):
            raise NotImplementedError(f"slimming a {type(block).__name__} with a non-identity {name!r} is unsupported")
    for name in ("bn1", "bn2"):
        if not isinstance(getattr(block, name), nn.BatchNorm2d):
            raise NotImplementedError(f"slimming needs BatchNorm2d {name}, got {type(getattr(block, name)).__name__}")


def slim_cnn_block(block: Bottleneck | BasicBlock, s: float, order: str = "prefix") -> Bottleneck | BasicBlock:
    """A physically smaller copy of a timm ResNet block keeping ``⌊s·c⌋`` inner channels.

    ``order``: ``prefix`` (the first channels) or ``l1`` (largest BatchNorm ``|γ|``, Liu et al. 2017's
    network-slimming criterion) [assumption].
    """
    from rsim.slimming.slim import keep_count

    if order not in ("prefix", "l1"):
        raise ValueError(f"order must be 'prefix' or 'l1', got {order!r}")
    _check(block)
    out = copy.deepcopy(block)
    conv1, conv2 = block.conv1, block.conv2
    bn1, bn2 = block.bn1, block.bn2
    assert isinstance(conv1, nn.Conv2d) and isinstance(conv2, nn.Conv2d)
    assert isinstance(bn1, nn.BatchNorm2d) and isinstance(bn2, nn.BatchNorm2d)
    idx1 = _channels(bn1, keep_count(conv1.out_channels, s), order)
    out.conv1 = slim_conv(conv1, out_idx=idx1)
    out.bn1 = slim_batchnorm(bn1, idx1)
    if isinstance(block, Bottleneck):
        idx2 = _channels(bn2, keep_count(conv2.out_channels, s), order)
        out.conv2 = slim_conv(conv2, out_idx=idx2, in_idx=idx1)
        out.bn2 = slim_batchnorm(bn2, idx2)
        conv3 = block.conv3
        assert isinstance(conv3, nn.Conv2d)
        out.conv3 = slim_conv(conv3, in_idx=idx2)
    else:
        out.conv2 = slim_conv(conv2, in_idx=idx1)
    return out
