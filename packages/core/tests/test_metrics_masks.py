import numpy as np
import pytest
import torch
from rsim.core.metrics import MaskIoU
from sklearn.metrics import jaccard_score


def test_hand_computed_giou_ciou_and_empty_sample() -> None:
    pred = torch.zeros(3, 4, 4, dtype=torch.bool)
    target = torch.zeros(3, 4, 4, dtype=torch.bool)
    pred[0, :2, :2] = True  # 4 px
    target[0, :2, :] = True  # 8 px -> inter 4, union 8, IoU 0.5
    pred[1, 0, 0] = True  # inter 0, union 2 (target elsewhere), IoU 0
    target[1, 3, 3] = True
    # sample 2: both empty -> IoU 1.0
    m = MaskIoU()
    m.update(pred, target)
    res = m.compute()
    assert res["giou"].item() == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    assert res["ciou"].item() == pytest.approx(4 / 10)
    only_empty = MaskIoU()
    only_empty.update(pred[2:], target[2:])
    assert only_empty.compute()["ciou"].item() == 1.0


def test_matches_sklearn_jaccard_over_batches() -> None:
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(6, 10, 10, generator=g) < 0.4
    target = torch.rand(6, 10, 10, generator=g) < 0.4
    a, b = MaskIoU(), MaskIoU()
    a.update(pred[:4], target[:4])
    b.update(pred[4:].long(), target[4:].long())  # 0/1 integer masks are accepted
    a.merge_state(b)
    res = a.compute()
    per_sample = [jaccard_score(t.numpy().ravel(), p.numpy().ravel()) for p, t in zip(pred, target, strict=True)]
    assert res["giou"].item() == pytest.approx(np.mean(per_sample), rel=1e-6)
    pooled = jaccard_score(target.numpy().ravel(), pred.numpy().ravel())
    assert res["ciou"].item() == pytest.approx(pooled, rel=1e-6)


def test_bad_inputs_raise() -> None:
    with pytest.raises(TypeError, match="bool"):
        MaskIoU().update(torch.rand(1, 2, 2), torch.ones(1, 2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="shapes differ"):
        MaskIoU().update(torch.ones(1, 2, 2, dtype=torch.bool), torch.ones(1, 2, 3, dtype=torch.bool))
