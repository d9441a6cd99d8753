import math

import numpy as np
import pytest
import torch
from rsim.core.metrics import MaskedRegressionMetrics
from sklearn.metrics import mean_absolute_error, mean_squared_error


def test_hand_computed_with_mask_and_nodata() -> None:
    pred = torch.tensor([[1.0, 2.0, 5.0], [0.0, float("nan"), 7.0]])
    target = torch.tensor([[0.0, 4.0, 5.0], [1.0, 3.0, float("nan")]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    # errors: 1, -2, 0, -1 -> mse 6/4, mae 4/4, mean -0.5, var 1.5 - 0.25
    m = MaskedRegressionMetrics()
    m.update(pred, target, mask)
    res = m.compute()
    assert res["rmse"].item() == pytest.approx(math.sqrt(1.5), rel=1e-6)
    assert res["mae"].item() == pytest.approx(1.0, rel=1e-6)
    assert res["error_std"].item() == pytest.approx(math.sqrt(1.25), rel=1e-6)


def test_matches_sklearn_across_batches_and_empty_batch() -> None:
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(4, 1, 16, 16, generator=g) * 3 + 10
    target = torch.randn(4, 1, 16, 16, generator=g) * 3 + 9
    mask = torch.rand(4, 1, 16, 16, generator=g) < 0.7
    m = MaskedRegressionMetrics()
    for i in range(4):
        m.update(pred[i : i + 1], target[i : i + 1], mask[i : i + 1])
    m.update(pred[:1], target[:1], torch.zeros_like(mask[:1]))  # all-False batch adds nothing
    res = m.compute()
    p, t = pred[mask].double().numpy(), target[mask].double().numpy()
    assert res["rmse"].item() == pytest.approx(math.sqrt(mean_squared_error(t, p)), rel=1e-6)
    assert res["mae"].item() == pytest.approx(mean_absolute_error(t, p), rel=1e-6)
    assert res["error_std"].item() == pytest.approx(np.std(p - t), rel=1e-6)


def test_merge_state_like_ddp_and_no_mask() -> None:
    g = torch.Generator().manual_seed(1)
    pred, target = torch.randn(2, 50, generator=g), torch.randn(2, 50, generator=g)
    whole, a, b = MaskedRegressionMetrics(), MaskedRegressionMetrics(), MaskedRegressionMetrics()
    whole.update(pred, target)
    a.update(pred[:1], target[:1], torch.ones(1, 50, dtype=torch.bool))
    b.update(pred[1:], target[1:], torch.ones(1, 50, dtype=torch.bool))
    a.merge_state(b)
    ra, rw = a.compute(), whole.compute()
    for key in ("rmse", "mae", "error_std"):
        assert ra[key].item() == pytest.approx(rw[key].item(), rel=1e-6)


def test_no_valid_pixel_gives_nan_and_bad_inputs_raise() -> None:
    m = MaskedRegressionMetrics()
    m.update(torch.ones(3), torch.zeros(3), torch.zeros(3, dtype=torch.bool))
    assert all(torch.isnan(v) for v in m.compute().values())
    with pytest.raises(TypeError, match="bool"):
        m.update(torch.ones(3), torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match="shapes differ"):
        m.update(torch.ones(3), torch.zeros(4))
    with pytest.raises(ValueError, match="mask shape"):
        m.update(torch.ones(3), torch.zeros(3), torch.ones(2, dtype=torch.bool))
