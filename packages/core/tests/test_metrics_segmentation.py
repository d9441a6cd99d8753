import math

import numpy as np
import pytest
import torch
from rsim.core.metrics import SegmentationMetrics
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, jaccard_score


def test_hand_computed_with_absent_class_and_ignore_index() -> None:
    # 4 classes; class 3 never occurs; 255 is ignored.
    target = torch.tensor([[[0, 0, 1, 1, 2, 255]]])
    preds = torch.tensor([[[0, 1, 1, 1, 0, 3]]])
    m = SegmentationMetrics(num_classes=4, ignore_index=255)
    m.update(preds, target)
    res = m.compute()
    # confusion (target rows): c0 -> [1,1,0], c1 -> [0,2,0], c2 -> [1,0,0]; 5 pixels, 3 correct
    assert res["oa"].item() == pytest.approx(3 / 5)
    # F1: c0 2*1/(2+2)=0.5, c1 2*2/(2+3)=0.8, c2 0, c3 NaN
    f1 = res["f1_per_class"]
    np.testing.assert_allclose(f1[:3].numpy(), [0.5, 0.8, 0.0], rtol=1e-6)
    assert torch.isnan(f1[3])
    assert res["f1_macro"].item() == pytest.approx(1.3 / 3, rel=1e-6)
    # IoU: c0 1/3, c1 2/3, c2 0
    iou = res["iou_per_class"]
    np.testing.assert_allclose(iou[:3].numpy(), [1 / 3, 2 / 3, 0.0], rtol=1e-6)
    assert torch.isnan(iou[3])
    assert res["miou"].item() == pytest.approx(1 / 3, rel=1e-6)
    # kappa: po 0.6, pe = (2*2 + 2*3 + 1*0)/25 = 0.4 -> (0.6-0.4)/0.6
    assert res["kappa"].item() == pytest.approx(1 / 3, rel=1e-6)


def test_matches_sklearn_with_logits_over_batches() -> None:
    g = torch.Generator().manual_seed(0)
    k = 5
    target = torch.randint(0, k, (3, 12, 12), generator=g)
    target[0, 0, :6] = -1  # ignore index
    logits = torch.randn(3, k, 12, 12, generator=g)
    logits.scatter_add_(1, target.clamp_min(0).unsqueeze(1), torch.full((3, 1, 12, 12), 1.2))
    m = SegmentationMetrics(num_classes=k, ignore_index=-1)
    m.update(logits[:2], target[:2])
    m.update(logits[2:], target[2:])
    res = m.compute()
    valid = (target != -1).numpy().ravel()
    y = target.numpy().ravel()[valid]
    p = logits.argmax(1).numpy().ravel()[valid]
    assert res["oa"].item() == pytest.approx(accuracy_score(y, p), rel=1e-6)
    np.testing.assert_allclose(res["f1_per_class"].numpy(), f1_score(y, p, average=None), rtol=1e-5)
    assert res["f1_macro"].item() == pytest.approx(f1_score(y, p, average="macro"), rel=1e-5)
    assert res["kappa"].item() == pytest.approx(cohen_kappa_score(y, p), rel=1e-5)
    np.testing.assert_allclose(res["iou_per_class"].numpy(), jaccard_score(y, p, average=None), rtol=1e-5)
    assert res["miou"].item() == pytest.approx(jaccard_score(y, p, average="macro"), rel=1e-5)


def test_merge_state_like_ddp() -> None:
    g = torch.Generator().manual_seed(1)
    preds = torch.randint(0, 3, (2, 8, 8), generator=g)
    target = torch.randint(0, 3, (2, 8, 8), generator=g)
    whole, a, b = (SegmentationMetrics(3) for _ in range(3))
    whole.update(preds, target)
    a.update(preds[:1], target[:1])
    b.update(preds[1:], target[1:])
    a.merge_state(b)
    assert torch.equal(a.confmat, whole.confmat)
    assert a.compute()["kappa"].item() == pytest.approx(whole.compute()["kappa"].item())


def test_degenerate_and_bad_inputs() -> None:
    m = SegmentationMetrics(2)
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert math.isnan(m.compute()["oa"].item())
    m.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long))
    res = m.compute()
    assert res["oa"].item() == 1.0
    assert math.isnan(res["kappa"].item())  # chance agreement 1
    with pytest.raises(ValueError, match=r"0\.\.1"):
        m.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), 2))
    with pytest.raises(ValueError, match="scores"):
        m.update(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        m.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2))


def test_in_range_ignore_index_is_left_out_of_means_like_torchmetrics() -> None:
    from torchmetrics.classification import MulticlassJaccardIndex

    g = torch.Generator().manual_seed(2)
    preds = torch.randint(0, 4, (2, 8, 8), generator=g)
    target = torch.randint(0, 4, (2, 8, 8), generator=g)
    m = SegmentationMetrics(4, ignore_index=0)
    m.update(preds, target)
    res = m.compute()
    assert torch.isnan(res["iou_per_class"][0]) and torch.isnan(res["f1_per_class"][0])
    ref = MulticlassJaccardIndex(num_classes=4, ignore_index=0, average="macro")
    assert res["miou"].item() == pytest.approx(ref(preds, target).item(), rel=1e-6)
    valid = (target != 0).numpy().ravel()
    y, p = target.numpy().ravel()[valid], preds.numpy().ravel()[valid]
    assert res["oa"].item() == pytest.approx(accuracy_score(y, p), rel=1e-6)
    np.testing.assert_allclose(
        res["iou_per_class"][1:].numpy(), jaccard_score(y, p, labels=[1, 2, 3], average=None), rtol=1e-5
    )
