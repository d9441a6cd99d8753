"""Batched differentiable soft rank in pure torch (Blondel et al., ICML 2020, L2 regularisation).

The soft rank of a row ``θ`` is the Euclidean projection of ``θ/ε`` onto the permutahedron of ``ρ = (n, …, 1)``.
After sorting, the projection reduces to a decreasing isotonic regression, solved here by pool-adjacent-violators
(PAV). Every row of the batch is solved at once: each pass merges *all* adjacent blocks that violate the order
(merging any violating pair is valid in PAV, so whole chains may merge together), which takes few passes for
well-separated inputs and at most ``n − 1`` in the worst case. Everything runs on the input's device.

The gradient is exact: inside each final block the isotonic solution is the block mean, so the Jacobian of the
projection in sorted order is ``I − blockmean``; the backward pass applies it with two scatter operations.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

Direction = Literal["ascending", "descending"]


def isotonic_decreasing(y: Tensor) -> tuple[Tensor, Tensor]:
    """Row-wise L2 isotonic regression with a non-increasing constraint, by batched PAV.

    Solves ``min_v ‖v − y‖²`` s.t. ``v_1 ≥ v_2 ≥ … ≥ v_n`` for every row of ``y``.

    Args:
        y: ``(R, n)`` floating tensor.

    Returns:
        ``(v, block)``: the solution ``(R, n)`` and the block index of every element ``(R, n)`` int64 (elements of
        one block share the same value).
    """
    if y.dim() != 2:
        raise ValueError(f"isotonic_decreasing expects a (rows, n) tensor, got shape {tuple(y.shape)}")
    rows, n = y.shape
    if n < 2 or not bool((y[:, :-1] < y[:, 1:]).any()):  # already ordered: every element is its own block
        return y.clone(), torch.arange(n, device=y.device).expand(rows, n).contiguous()
    starts = torch.ones_like(y, dtype=torch.bool)  # starts[:, i]: element i opens a block
    ones = torch.ones_like(y)
    while True:
        block = torch.cumsum(starts, dim=1) - 1
        sums = torch.zeros_like(y).scatter_add_(1, block, y)
        counts = torch.zeros_like(y).scatter_add_(1, block, ones)
        means = sums / counts.clamp_min(1.0)
        v = means.gather(1, block)
        violated = starts[:, 1:] & (v[:, :-1] < v[:, 1:])
        if not bool(violated.any()):
            return v, block
        starts[:, 1:] &= ~violated


def _block_mean(x: Tensor, block: Tensor) -> Tensor:
    sums = torch.zeros_like(x).scatter_add_(1, block, x)
    counts = torch.zeros_like(x).scatter_add_(1, block, torch.ones_like(x))
    return (sums / counts.clamp_min(1.0)).gather(1, block)


class _SoftRankL2(torch.autograd.Function):
    """Projection of ``θ·scale`` onto the permutahedron of ``(n, …, 1)``, with the exact vector–Jacobian product."""

    @staticmethod
    def forward(ctx: Any, theta: Tensor, scale: float) -> Tensor:
        n = theta.shape[1]
        z = theta * scale
        z = z - z.mean(dim=1, keepdim=True)  # the permutahedron is normal to 1: shifting rows changes nothing
        perm = torch.argsort(z, dim=1, descending=True)
        z_sorted = z.gather(1, perm)
        w = torch.arange(n, 0, -1, dtype=z.dtype, device=z.device)
        _, block = isotonic_decreasing(z_sorted - w)
        # z − blockmean(z − w) written as (z − blockmean(z)) + blockmean(w): no cancellation of large |z|
        projected = (z_sorted - _block_mean(z_sorted, block)) + _block_mean(w.expand_as(z_sorted), block)
        out = torch.empty_like(z).scatter_(1, perm, projected)
        ctx.save_for_backward(perm, block)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None]:
        perm, block = ctx.saved_tensors
        g_sorted = grad_out.gather(1, perm)
        g_sorted = g_sorted - _block_mean(g_sorted, block)
        grad = torch.empty_like(grad_out).scatter_(1, perm, g_sorted)
        return grad * ctx.scale, None


def soft_rank(
    values: Tensor,
    regularization_strength: float = 1.0,
    direction: Direction = "ascending",
    backend: Literal["torch", "torchsort"] = "torch",
) -> Tensor:
    """Differentiable ranks (1 … n) of every row, L2-regularised with strength ``ε``.

    As ``ε → 0`` the result tends to the hard ranks (ascending: the smallest value gets 1); as ``ε → ∞`` every
    rank tends to ``(n + 1) / 2``. Half-precision inputs are computed in float32 and cast back.

    Args:
        values: ``(n,)`` or ``(R, n)`` tensor.
        regularization_strength: ``ε > 0``.
        direction: ``ascending`` (smallest → 1) or ``descending`` (largest → 1).
        backend: ``torch`` (this module) or ``torchsort`` (its C++/CUDA extension, if installed).

    Returns:
        Soft ranks with the shape and dtype of ``values``.
    """
    if regularization_strength <= 0:
        raise ValueError(f"regularization_strength must be > 0, got {regularization_strength}")
    if direction not in ("ascending", "descending"):
        raise ValueError(f"direction must be 'ascending' or 'descending', got {direction!r}")
    squeeze = values.dim() == 1
    x = values.unsqueeze(0) if squeeze else values
    if x.dim() != 2:
        raise ValueError(f"soft_rank expects a 1-D or 2-D tensor, got shape {tuple(values.shape)}")
    dtype = x.dtype
    work = x.float() if dtype in (torch.float16, torch.bfloat16) else x
    sign = 1.0 if direction == "ascending" else -1.0
    if backend == "torch":
        out = _SoftRankL2.apply(work, sign / regularization_strength)
    elif backend == "torchsort":
        try:
            import torchsort
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("soft_rank(backend='torchsort') needs the optional torchsort package") from exc
        out = torchsort.soft_rank(work * sign, regularization="l2", regularization_strength=regularization_strength)
    else:
        raise ValueError(f"unknown soft-rank backend {backend!r}; expected 'torch' or 'torchsort'")
    out = out.to(dtype)
    return out.squeeze(0) if squeeze else out


def hard_rank(values: Tensor, direction: Direction = "ascending") -> Tensor:
    """Hard ranks 1 … n of every row (ties broken by position), as floats of the input's dtype."""
    order = torch.argsort(values if direction == "ascending" else -values, dim=-1, stable=True)
    return (torch.argsort(order, dim=-1) + 1).to(values.dtype if values.is_floating_point() else torch.float32)


__all__ = ["hard_rank", "isotonic_decreasing", "soft_rank"]
