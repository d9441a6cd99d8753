import pytest
import torch
from rsim.core.metrics import BoxAccuracy, box_iou, paired_box_iou


def test_box_iou_hand_computed() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 1.0], [5.0, 5.0, 6.0, 6.0]])
    # a0/b0: inter 1, union 7; a0/b1: inter 2, union 4; a1/b1: inter 1, union 2
    expected = torch.tensor([[1 / 7, 0.5, 0.0], [0.0, 0.5, 0.0]])
    torch.testing.assert_close(box_iou(a, b), expected)
    torch.testing.assert_close(paired_box_iou(a, b[:2]), torch.tensor([1 / 7, 0.5]))


def test_paired_iou_is_the_diagonal_of_pairwise() -> None:
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(20, 2, generator=g) * 50
    a = torch.cat([xy, xy + torch.rand(20, 2, generator=g) * 30 + 1], dim=1)
    xy2 = xy + torch.randn(20, 2, generator=g) * 5
    b = torch.cat([xy2, xy2 + torch.rand(20, 2, generator=g) * 30 + 1], dim=1)
    torch.testing.assert_close(paired_box_iou(a, b), box_iou(a, b).diagonal())
    # integer pixel boxes work too; a zero-area pair has IoU 0, not NaN
    zero = torch.tensor([[3, 3, 3, 3]])
    assert paired_box_iou(zero, zero).item() == 0.0


def test_box_accuracy_hand_computed_over_batches() -> None:
    target = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 4)
    pred = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],  # IoU 1
            [0.0, 0.0, 10.0, 5.0],  # IoU 0.5 -> counts (>=)
            [0.0, 0.0, 5.0, 5.0],  # IoU 0.25
            [20.0, 20.0, 30.0, 30.0],  # IoU 0
        ]
    )
    m = BoxAccuracy()
    m.update(pred[:2], target[:2])
    m.update(pred[2:], target[2:])
    res = m.compute()
    assert set(res) == {"miou", "acc@0.5"}
    assert res["miou"].item() == pytest.approx((1 + 0.5 + 0.25) / 4)
    assert res["acc@0.5"].item() == pytest.approx(0.5)
    other = BoxAccuracy(threshold=0.25)
    other.update(pred, target)
    assert other.compute()["acc@0.25"].item() == pytest.approx(0.75)
    # DDP-style merge
    a, b = BoxAccuracy(), BoxAccuracy()
    a.update(pred[:1], target[:1])
    b.update(pred[1:], target[1:])
    a.merge_state(b)
    assert a.compute()["miou"].item() == pytest.approx(res["miou"].item())


def test_bad_boxes_raise() -> None:
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        box_iou(torch.zeros(3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="x1 <= x2"):
        BoxAccuracy().update(torch.tensor([[5.0, 0.0, 1.0, 1.0]]), torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match="same number"):
        paired_box_iou(torch.zeros(2, 4), torch.zeros(3, 4))
