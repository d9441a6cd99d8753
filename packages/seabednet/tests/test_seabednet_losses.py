"""Masked RMSE, cross-entropy without "undefined", uncertainty weighting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from rsim.seabednet.losses import TaskWeighting, masked_ce, masked_rmse, valid_depth_mask


def test_masked_rmse_matches_numpy_and_ignores_invalid() -> None:
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 1, 8, 8, generator=g, requires_grad=True)
    target = torch.rand(2, 1, 8, 8, generator=g)
    target[0, 0, :2] = 0.0
    image = torch.rand(2, 3, 8, 8, generator=g) + 0.1
    image[1, :2, :, 5:] = 0.0  # 2 of 3 channels no-data -> invalid
    mask = valid_depth_mask(target, image)
    assert not mask[0, 0, :2].any() and not mask[1, 0, :, 5:].any() and mask.sum() == 128 - 16 - 24
    target_nan = target.clone()
    target_nan[~mask] = float("nan")
    loss = masked_rmse(pred, target_nan, mask)
    m = mask.numpy()
    expect = np.sqrt(np.mean((pred.detach().numpy()[m] - target.numpy()[m]) ** 2))
    assert loss.item() == pytest.approx(expect, rel=1e-6)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and (pred.grad[~mask] == 0).all()


def test_empty_batches_give_zero_not_nan() -> None:
    pred = torch.rand(1, 1, 4, 4, requires_grad=True)
    loss = masked_rmse(pred, torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(pred.grad).all()
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    ce = masked_ce(logits, torch.full((1, 4, 4), 2), ignore_index=2)
    ce.backward()
    assert ce.item() == 0.0 and torch.isfinite(logits.grad).all()


def test_masked_ce_ignores_undefined() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, 6, 6, generator=g)
    target = torch.randint(0, 5, (2, 6, 6), generator=g)
    keep = target != 4
    expect = torch.nn.functional.cross_entropy(logits.permute(0, 2, 3, 1)[keep], target[keep])
    assert masked_ce(logits, target, 4).item() == pytest.approx(expect.item(), rel=1e-6)


def test_kendall_weighting() -> None:
    tw = TaskWeighting("kendall", init_log_var=0.5)
    lb, ls = torch.tensor(2.0), torch.tensor(3.0)
    total = tw(lb, ls)
    e = math.exp(-0.5)
    assert total.item() == pytest.approx(0.5 * e * 2 + 0.25 + e * 3 + 0.25, rel=1e-6)
    torch.testing.assert_close(tw.weights(), torch.tensor([0.5 * e, e]))
    total.backward()
    # d/ds_b = -0.5 e L_b + 0.5
    assert tw.log_vars.grad[0].item() == pytest.approx(-0.5 * e * 2 + 0.5, rel=1e-5)
    fixed = TaskWeighting("fixed", fixed_weights=(2.0, 0.5))
    assert fixed(lb, ls).item() == pytest.approx(5.5)
    assert not fixed.log_vars.requires_grad
    sym = TaskWeighting("symmetric")
    assert sym(lb, ls).item() == pytest.approx(5.0)
    with pytest.raises(ValueError, match="task_weighting"):
        TaskWeighting("gradnorm")  # type: ignore[arg-type]
