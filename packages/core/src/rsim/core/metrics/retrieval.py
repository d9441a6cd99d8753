"""Retrieval metrics at a cut-off k: precision, recall and F1 per query, averaged over queries."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["RetrievalAtK", "retrieval_at_k"]

EmptyQueries = Literal["skip", "zero"]


def _per_query(scores: Tensor, relevant: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-query precision, recall, F1 at k (float64, (Q,)) and whether a relevant item exists (bool)."""
    if scores.ndim != 2 or scores.shape != relevant.shape:
        raise ValueError(
            f"retrieval: scores and relevant must both be (Q, N), got {tuple(scores.shape)} and {tuple(relevant.shape)}"
        )
    if relevant.is_floating_point() or relevant.is_complex():
        raise TypeError(f"retrieval: relevant must be a bool (or 0/1 integer) tensor, got dtype {relevant.dtype}")
    n = scores.shape[1]
    if not 1 <= k <= n:
        raise ValueError(f"retrieval: k must be in 1..N (N={n} database items), got k={k}")
    rel = relevant.bool()
    # Stable descending sort: ties go to the lower database index, so results are deterministic.
    top = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :k]
    hits = rel.gather(1, top).sum(dim=1).to(torch.float64)
    n_rel = rel.sum(dim=1).to(torch.float64)
    precision = hits / k
    recall = hits / n_rel.clamp_min(1.0)
    denom = precision + recall
    f1 = torch.where(denom > 0, 2.0 * precision * recall / denom.clamp_min(1e-300), torch.zeros_like(denom))
    return precision, recall, f1, n_rel > 0


def _check_empty(empty_queries: str) -> None:
    if empty_queries not in ("skip", "zero"):
        raise ValueError(f"retrieval: empty_queries must be 'skip' or 'zero', got {empty_queries!r}")


def retrieval_at_k(scores: Tensor, relevant: Tensor, k: int, empty_queries: EmptyQueries = "skip") -> dict[str, Tensor]:
    """Precision@k, recall@k and F1@k averaged over queries.

    For each query the k highest-scoring database items are retrieved (ties broken towards the lower index);
    precision = hits / k, recall = hits / (number of relevant items), F1 = harmonic mean of that query's
    precision and recall (0 when both are 0). The three are then averaged over queries (F1 is per query, then
    averaged; it is not the F1 of the mean precision and recall).

    Args:
        scores: Similarity scores (Q, N), higher = more similar.
        relevant: Bool (Q, N), True where database item n is relevant to query q.
        k: Cut-off, 1 <= k <= N.
        empty_queries: Queries without any relevant item: ``"skip"`` leaves them out of all three means (NaN
            when no query has a relevant item); ``"zero"`` keeps them with precision, recall and F1 all 0.

    Returns:
        ``{"precision", "recall", "f1"}`` as float32 scalars.
    """
    _check_empty(empty_queries)
    precision, recall, f1, has_rel = _per_query(scores, relevant, k)
    keep = has_rel if empty_queries == "skip" else torch.ones_like(has_rel)
    n = keep.sum().to(torch.float64)
    return {
        name: ((v * keep).sum() / n).float() for name, v in (("precision", precision), ("recall", recall), ("f1", f1))
    }


class RetrievalAtK(Metric):
    """Precision@k, recall@k and F1@k accumulated over batches of queries (see :func:`retrieval_at_k`).

    Args:
        k: Cut-off.
        empty_queries: ``"skip"`` or ``"zero"``, as in :func:`retrieval_at_k`.

    Each ``update(scores (Q, N), relevant (Q, N))`` adds Q queries ranked against the same N-item database;
    the result equals :func:`retrieval_at_k` on all queries stacked. NaN before any counted query.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    precision_sum: Tensor
    recall_sum: Tensor
    f1_sum: Tensor
    num_queries: Tensor

    def __init__(self, k: int, empty_queries: EmptyQueries = "skip") -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"RetrievalAtK: k must be >= 1, got {k}")
        _check_empty(empty_queries)
        self.k = k
        self.empty_queries = empty_queries
        for name in ("precision_sum", "recall_sum", "f1_sum"):
            self.add_state(name, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_queries", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, scores: Tensor, relevant: Tensor) -> None:
        """Add a batch of queries: scores (Q, N) and bool relevance (Q, N)."""
        precision, recall, f1, has_rel = _per_query(scores, relevant, self.k)
        keep = has_rel if self.empty_queries == "skip" else torch.ones_like(has_rel)
        self.precision_sum += (precision * keep).sum()
        self.recall_sum += (recall * keep).sum()
        self.f1_sum += (f1 * keep).sum()
        self.num_queries += keep.sum()

    def compute(self) -> dict[str, Tensor]:
        """Return ``{"precision", "recall", "f1"}`` as float32 scalars."""
        n = self.num_queries.to(torch.float64)
        return {
            "precision": (self.precision_sum / n).float(),
            "recall": (self.recall_sum / n).float(),
            "f1": (self.f1_sum / n).float(),
        }
