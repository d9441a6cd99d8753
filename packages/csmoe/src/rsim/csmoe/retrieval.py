"""Content-based image retrieval (CBIR) scores of CSMAE's protocol (exact L2 search, normalised features)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["DIRECTIONS", "cbir_scores", "cross_sensor_retrieval"]

#: (query sensor, archive sensor) pairs evaluated.
DIRECTIONS: tuple[tuple[str, str], ...] = (("s1", "s1"), ("s1", "s2"), ("s2", "s1"), ("s2", "s2"))


def cbir_scores(
    query: Tensor,
    query_labels: Tensor,
    archive: Tensor,
    archive_labels: Tensor,
    k: int = 10,
    exclude_self: bool = False,
    chunk: int = 1024,
) -> dict[str, float]:
    """Multi-label precision/recall/F1@k of exact nearest-neighbour retrieval.

    For a query with label set ``Q`` and a retrieved item with label set ``R``: precision ``|Q∩R|/|R|``,
    recall ``|Q∩R|/|Q|`` and F1 ``2|Q∩R|/(|Q|+|R|)``; each is averaged over the top ``k`` items, then over
    queries.

    Args:
        query: ``[Nq, D]`` query features.
        query_labels: ``[Nq, C]`` 0/1 labels.
        archive: ``[Na, D]`` archive features.
        archive_labels: ``[Na, C]`` 0/1 labels.
        k: Retrieved items per query.
        exclude_self: Skip index i of the archive for query i (query set = archive set).
        chunk: Queries per distance block (memory bound).

    Returns:
        ``{"precision@k", "recall@k", "f1@k"}`` as floats in [0, 1].
    """
    if query.shape[0] != query_labels.shape[0] or archive.shape[0] != archive_labels.shape[0]:
        raise ValueError("features and labels differ in length")
    kk = min(k, archive.shape[0] - int(exclude_self))
    if kk < 1:
        raise ValueError(f"archive of {archive.shape[0]} item(s) is too small for retrieval at k={k}")
    q = F.normalize(query.float(), dim=1)
    a = F.normalize(archive.float(), dim=1)
    ql, al = query_labels.float(), archive_labels.float()
    sums = torch.zeros(3, dtype=torch.float64)
    for start in range(0, q.shape[0], chunk):
        d = torch.cdist(q[start : start + chunk], a)
        if exclude_self:
            rows = torch.arange(d.shape[0])
            d[rows, rows + start] = float("inf")
        idx = d.topk(kk, dim=1, largest=False).indices  # [n, kk]
        ret = al[idx]  # [n, kk, C]
        qlab = ql[start : start + chunk, None, :]
        inter = (ret * qlab).sum(-1)
        n_ret, n_q = ret.sum(-1), qlab.sum(-1)
        prec = inter / n_ret.clamp_min(1)
        rec = inter / n_q.clamp_min(1)
        f1 = 2 * inter / (n_ret + n_q).clamp_min(1)
        sums += torch.stack([prec.mean(1).sum(), rec.mean(1).sum(), f1.mean(1).sum()]).double()
    means = (sums / q.shape[0]).tolist()
    return {f"precision@{k}": means[0], f"recall@{k}": means[1], f"f1@{k}": means[2]}


def cross_sensor_retrieval(
    query_feats: dict[str, Tensor],
    query_labels: Tensor,
    archive_feats: dict[str, Tensor],
    archive_labels: Tensor,
    k: int = 10,
    exclude_self: bool = False,
) -> dict[str, float]:
    """CBIR scores in the four sensor directions, keys like ``s1->s2/precision@10``."""
    out: dict[str, float] = {}
    for qs, as_ in DIRECTIONS:
        scores = cbir_scores(query_feats[qs], query_labels, archive_feats[as_], archive_labels, k, exclude_self)
        out.update({f"{qs}->{as_}/{name}": v for name, v in scores.items()})
    return out
