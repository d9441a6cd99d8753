import numpy as np
import pytest
import torch
from rsim.core.metrics import multilabel_metrics, multilabel_per_class
from sklearn.metrics import average_precision_score, f1_score


def _data(n: int = 64, labels: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = (torch.rand(n, labels, generator=g) < 0.4).long()
    target[0] = 1  # every label has a positive
    logits = torch.randn(n, labels, generator=g) + 1.5 * (target - 0.5)
    return logits, target


def test_hand_computed_case() -> None:
    # 4 samples x 2 labels, probabilities.
    probs = torch.tensor([[0.9, 0.2], [0.6, 0.7], [0.4, 0.8], [0.1, 0.3]])
    target = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]])
    out = multilabel_metrics(2, from_logits=False).to("cpu")
    out.update(probs, target)
    res = out.compute()
    # label 0: ranking 0.9(+) 0.6(-) 0.4(+) 0.1(-): AP = (1/1 + 2/3) / 2 = 5/6
    # label 1: ranking 0.8(+) 0.7(+) 0.3(-) 0.2(-): AP = 1
    assert res["map_macro"].item() == pytest.approx((5 / 6 + 1) / 2, abs=1e-6)
    # pooled: 0.9+ 0.8+ 0.7+ 0.6- 0.4+ ...: AP = (1 + 1 + 1 + 4/5) / 4
    assert res["map_micro"].item() == pytest.approx((3 + 0.8) / 4, abs=1e-6)
    # label 0 preds >0.5: [1,1,0,0] -> tp 1 fp 1 fn 1 -> F1 0.5; label 1: [0,1,1,0] -> tp 2 -> F1 1
    assert res["f1_macro"].item() == pytest.approx(0.75, abs=1e-6)
    # micro: tp 3, fp 1, fn 1 -> 6 / 8
    assert res["f1_micro"].item() == pytest.approx(0.75, abs=1e-6)


@pytest.mark.parametrize("from_logits", [True, False])
def test_matches_sklearn(from_logits: bool) -> None:
    logits, target = _data()
    probs = logits.sigmoid()
    preds = logits if from_logits else probs
    coll = multilabel_metrics(5, prefix="val/", from_logits=from_logits)
    per_class = multilabel_per_class(5, from_logits=from_logits)
    for chunk in range(0, 64, 16):  # several batches
        coll.update(preds[chunk : chunk + 16], target[chunk : chunk + 16])
        per_class.update(preds[chunk : chunk + 16], target[chunk : chunk + 16])
    res = coll.compute()
    pc = per_class.compute()
    assert set(res) == {"val/map_micro", "val/map_macro", "val/f1_micro", "val/f1_macro"}
    y, p = target.numpy(), probs.numpy().astype(np.float64)
    yhat = (p > 0.5).astype(int)
    assert res["val/map_micro"].item() == pytest.approx(average_precision_score(y, p, average="micro"), abs=1e-5)
    assert res["val/map_macro"].item() == pytest.approx(average_precision_score(y, p, average="macro"), abs=1e-5)
    assert res["val/f1_micro"].item() == pytest.approx(f1_score(y, yhat, average="micro"), abs=1e-6)
    assert res["val/f1_macro"].item() == pytest.approx(f1_score(y, yhat, average="macro"), abs=1e-6)
    np.testing.assert_allclose(pc["ap_per_class"].numpy(), average_precision_score(y, p, average=None), atol=1e-5)
    np.testing.assert_allclose(pc["f1_per_class"].numpy(), f1_score(y, yhat, average=None), atol=1e-6)


def test_logits_and_probabilities_agree_and_bool_target() -> None:
    logits, target = _data(seed=1)
    a = multilabel_metrics(5, from_logits=True)
    b = multilabel_metrics(5, from_logits=False)
    a.update(logits, target.bool())
    b.update(logits.sigmoid(), target)
    ra, rb = a.compute(), b.compute()
    for key in ra:
        assert ra[key].item() == pytest.approx(rb[key].item(), abs=1e-6)


def test_logits_inside_unit_interval_are_not_mistaken_for_probabilities() -> None:
    # Logits that happen to lie in [0, 1] must still go through the sigmoid: every sigmoid(x) > 0.5 here,
    # so with from_logits=True all labels are predicted positive.
    logits = torch.tensor([[0.1, 0.2], [0.3, 0.4]])
    target = torch.tensor([[1, 0], [1, 1]])
    m = multilabel_metrics(2, from_logits=True)
    m.update(logits, target)
    # label 0: tp 2 -> F1 1; label 1: tp 1, fp 1 -> F1 2/3 => macro 5/6 (as probabilities it would be 0 and 0)
    assert m.compute()["f1_macro"].item() == pytest.approx(5 / 6)


def test_probabilities_out_of_range_raise() -> None:
    m = multilabel_metrics(2, from_logits=False)
    with pytest.raises(ValueError, match="outside"):
        m.update(torch.tensor([[1.5, 0.2]]), torch.tensor([[1, 0]]))


def test_merge_state_like_ddp() -> None:
    logits, target = _data(seed=2)
    whole, a, b = (multilabel_metrics(5) for _ in range(3))
    whole.update(logits, target)
    a.update(logits[:30], target[:30])
    b.update(logits[30:], target[30:])
    for key in ("map_micro", "map_macro", "f1_micro", "f1_macro"):
        a[key].merge_state(b[key])
    ra, rw = a.compute(), whole.compute()
    for key in rw:
        assert ra[key].item() == pytest.approx(rw[key].item(), abs=1e-6)
