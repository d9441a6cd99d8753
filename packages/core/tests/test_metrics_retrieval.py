import numpy as np
import pytest
import torch
from rsim.core.metrics import RetrievalAtK, retrieval_at_k
from sklearn.metrics import f1_score, precision_score, recall_score


def test_hand_computed_and_empty_query_policies() -> None:
    scores = torch.tensor(
        [
            [0.9, 0.8, 0.1, 0.7, 0.2],  # top-2: items 0, 1
            [0.1, 0.2, 0.3, 0.4, 0.5],  # top-2: items 4, 3
            [0.5, 0.5, 0.5, 0.5, 0.5],  # ties -> items 0, 1
        ]
    )
    relevant = torch.tensor(
        [
            [True, False, False, True, True],  # hits 1 of 3: P 1/2, R 1/3, F1 2/5
            [False, False, False, False, False],  # no relevant item
            [False, True, False, False, False],  # hits 1 of 1: P 1/2, R 1, F1 2/3
        ]
    )
    skip = retrieval_at_k(scores, relevant, k=2)
    assert skip["precision"].item() == pytest.approx(0.5)
    assert skip["recall"].item() == pytest.approx((1 / 3 + 1) / 2)
    assert skip["f1"].item() == pytest.approx((0.4 + 2 / 3) / 2)
    zero = retrieval_at_k(scores, relevant, k=2, empty_queries="zero")
    assert zero["precision"].item() == pytest.approx(1 / 3)
    assert zero["recall"].item() == pytest.approx((1 / 3 + 1) / 3)
    assert zero["f1"].item() == pytest.approx((0.4 + 2 / 3) / 3)
    m = RetrievalAtK(k=2, empty_queries="zero")
    m.update(scores[:1], relevant[:1])
    m.update(scores[1:], relevant[1:])
    res = m.compute()
    for key in ("precision", "recall", "f1"):
        assert res[key].item() == pytest.approx(zero[key].item())


def test_matches_sklearn_on_top_k_binarisation() -> None:
    g = torch.Generator().manual_seed(0)
    q, n, k = 12, 30, 5
    relevant = torch.rand(q, n, generator=g) < 0.2
    relevant[:, 0] = True  # every query has a relevant item
    scores = torch.randn(q, n, generator=g) + relevant.float()
    top = scores.argsort(dim=1, descending=True)[:, :k]
    retrieved = torch.zeros(q, n, dtype=torch.bool).scatter_(1, top, True)
    y, yhat = relevant.numpy(), retrieved.numpy()
    expected = {
        "precision": np.mean([precision_score(a, b) for a, b in zip(y, yhat, strict=True)]),
        "recall": np.mean([recall_score(a, b) for a, b in zip(y, yhat, strict=True)]),
        "f1": np.mean([f1_score(a, b, zero_division=0) for a, b in zip(y, yhat, strict=True)]),
    }
    func = retrieval_at_k(scores, relevant, k)
    a, b = RetrievalAtK(k), RetrievalAtK(k)
    a.update(scores[:5], relevant[:5])
    b.update(scores[5:], relevant[5:])
    a.merge_state(b)  # DDP-style sum reduction
    acc = a.compute()
    for key, value in expected.items():
        assert func[key].item() == pytest.approx(value, rel=1e-6)
        assert acc[key].item() == pytest.approx(value, rel=1e-6)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="k must be"):
        retrieval_at_k(torch.rand(2, 3), torch.ones(2, 3, dtype=torch.bool), k=4)
    with pytest.raises(ValueError, match="empty_queries"):
        RetrievalAtK(2, empty_queries="drop")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bool"):
        retrieval_at_k(torch.rand(2, 3), torch.rand(2, 3), k=1)
    with pytest.raises(ValueError, match=r"\(Q, N\)"):
        retrieval_at_k(torch.rand(2, 3), torch.ones(2, 4, dtype=torch.bool), k=1)
