"""Device-side input assembly: environment scaling, Tx features, sparse observations, joint flips/rot90."""

from __future__ import annotations

import math

import torch
from rsim.radiomap.data.layout import PL_RANGE, PL_TRNC
from torch import Tensor

__all__ = ["augment_joint", "build_inputs", "sample_observations", "tx_features"]

TX_Z_SCALE = 2.76  #: Tx one-hot value = z / 2.76 m [code]
DIST_SCALE = 13.58  #: distance map / room diagonal (9.6·√2 m) [code]


def tx_features(tx: Tensor, size: int, extent_m: float, *, frequency_hz: float | None = None) -> Tensor:
    """``[B, 2 (+1), S, S]``: one-hot Tx pixel with value z/2.76, 2-D distance / 13.58, optional normalised FSPL.

    ``tx`` is ``[B, 3]`` metres; x runs along columns, y along rows.
    """
    px = extent_m / size
    c = (torch.arange(size, device=tx.device, dtype=torch.float32) + 0.5) * px
    dx = c[None, None, :] - tx[:, 0, None, None]
    dy = c[None, :, None] - tx[:, 1, None, None]
    dist = torch.sqrt(dx**2 + dy**2)
    onehot = torch.zeros_like(dist)
    col = (tx[:, 0] / px).floor().long().clamp(0, size - 1)
    row = (tx[:, 1] / px).floor().long().clamp(0, size - 1)
    onehot[torch.arange(len(tx), device=tx.device), row, col] = tx[:, 2] / TX_Z_SCALE
    feats = [onehot, dist / DIST_SCALE]
    if frequency_hz is not None:
        d3 = torch.sqrt(dist**2 + (tx[:, 2, None, None] - 1.0) ** 2).clamp_min(0.1)
        fspl = 20 * torch.log10(d3) + 20 * math.log10(frequency_hz) - 147.55
        feats.append(((-fspl - PL_TRNC) / PL_RANGE).clamp(0, 1))
    return torch.stack(feats, dim=1)


def sample_observations(valid: Tensor, fraction: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Pick ``round(fraction·n_valid)`` valid pixels per sample (at least one when fraction > 0).

    Args:
        valid: Bool ``[B, 1, M, M]``.
        fraction: ``[B]`` fractions in [0, 1].
        generator: CPU generator for reproducible draws (else the global RNG).

    Returns:
        Bool ``[B, 1, M, M]`` observation mask (a subset of ``valid``).
    """
    b = valid.shape[0]
    flat = valid.flatten(1)
    scores = torch.rand(flat.shape, generator=generator).to(valid.device)
    scores = torch.where(flat, scores, torch.full_like(scores, 2.0))
    ranks = scores.argsort(1).argsort(1)
    n_valid = flat.sum(1).float()
    k = torch.round(fraction.to(valid.device).float() * n_valid)
    k = torch.where((fraction.to(valid.device) > 0) & (n_valid > 0), k.clamp_min(1), k)
    return ((ranks < k[:, None]) & flat).view(b, *valid.shape[1:])


def build_inputs(
    env: Tensor,
    tx: Tensor,
    target: Tensor,
    obs: Tensor,
    *,
    encoding: str,
    n_classes: int,
    extent_m: float,
    obs_mask_channel: bool = False,
    fspl_frequency_hz: float | None = None,
) -> Tensor:
    """Concatenate environment, Tx features, observations (×8 nearest-upsampled) [, observation mask]."""
    size = env.shape[-1]
    if encoding == "binary":
        e = (env > 0).float()
    elif encoding == "classes":
        e = env.float() / (n_classes - 1)
    elif encoding == "properties":
        e = env.float() / 255.0
    else:
        e = env.float()[:, :0]
    scale = size // target.shape[-1]
    obs_map = torch.where(obs, target, torch.zeros_like(target))
    parts = [e, tx_features(tx, size, extent_m, frequency_hz=fspl_frequency_hz),
             obs_map.repeat_interleave(scale, -1).repeat_interleave(scale, -2)]  # fmt: skip
    if obs_mask_channel:
        parts.append(obs.float().repeat_interleave(scale, -1).repeat_interleave(scale, -2))
    return torch.cat(parts, dim=1)


def augment_joint(tensors: list[Tensor], flip: Tensor, rot: Tensor) -> list[Tensor]:
    """Per sample: horizontal flip where ``flip[b]``, then ``rot90`` by ``rot[b]`` quarter turns, on every tensor."""
    out = []
    for t in tensors:
        items = []
        for i in range(t.shape[0]):
            x = t[i]
            if bool(flip[i]):
                x = x.flip(-1)
            items.append(torch.rot90(x, int(rot[i]), dims=(-2, -1)))
        out.append(torch.stack(items))
    return out
