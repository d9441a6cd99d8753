import math

import pytest
import torch
from rsim.nar.noise import inject_noise
from rsim.nar.nrl import NRLConfig, correction_stats, nrl_update


def test_rules_on_hand_made_entries():
    # class 0 prevalence 0.5 (passes the 0.2 add gate), class 1 prevalence 0.25.
    y = torch.tensor([[1, 0], [1, 1], [0, 0], [0, 0]], dtype=torch.float32)
    p = torch.tensor([[0.05, 0.97], [0.15, 0.5], [0.95, 0.6], [0.3, 0.2]])
    cfg = NRLConfig(p1_zero=0.94, p2_zero=0.54, p1_one=0.1, p2_one=0.2, class_min_add=0.2)
    r = nrl_update(y, p, cfg)
    # (0,0): observed 1, p<p1_one -> flip to 0; (1,0): p in [0.1,0.2) -> deactivated
    assert r.flip_to_zero.tolist() == [[True, False], [False, False], [False, False], [False, False]]
    # (0,1): observed 0, p>0.94 -> flip to 1; (2,0): 0.95 -> flip; (2,1): 0.6 in (0.54,0.94] -> deactivate
    assert r.flip_to_one.tolist() == [[False, True], [False, False], [True, False], [False, False]]
    assert r.deactivated.tolist() == [[False, False], [True, False], [False, True], [False, False]]
    assert r.labels.tolist() == [[0, 1], [1, 1], [1, 0], [0, 0]]
    assert r.weights.tolist() == [[1, 1], [0, 1], [1, 0], [1, 1]]


def test_prevalence_gate_blocks_flips_to_zero():
    y = torch.tensor([[1, 0], [0, 1], [0, 0], [0, 0], [0, 0], [0, 0]], dtype=torch.float32)  # prevalence 1/6
    p = torch.full_like(y, 0.01)
    r = nrl_update(y, p, NRLConfig(p1_one=0.1, p2_one=0.2, class_min_add=0.2))
    assert not r.flip_to_zero.any()
    assert r.deactivated[y > 0].all()  # still below p2_one -> deactivated instead
    r = nrl_update(y, p, NRLConfig(p1_one=0.1, p2_one=0.2, class_min_add=0.1))
    assert r.flip_to_zero[y > 0].all()


def test_classwise_and_dynamic_thresholds():
    y = torch.tensor([[1.0], [1.0], [0.0], [0.0]])  # prevalence 0.5 -> cw p1 = 0.5/3-0.05, p2 = 0.45
    p = torch.tensor([[0.1], [0.3], [0.5], [0.7]])
    r = nrl_update(y, p, NRLConfig(p1_zero=1.0, p2_zero="dynamic", p1_one="cw", p2_one="cw", class_min_add=0.0))
    assert r.flip_to_zero[:, 0].tolist() == [True, False, False, False]  # 0.1 < 0.1167
    assert r.deactivated[:, 0].tolist() == [False, True, False, True]  # 0.3 < 0.45; 0.7 > 0.2*0.5+0.5
    assert not r.flip_to_one.any()


@pytest.mark.parametrize(
    "kw",
    [
        {"p1_zero": 0.5, "p2_zero": 0.6},
        {"p1_one": 0.3, "p2_one": 0.2},
        {"p1_zero": 1.2},
        {"p2_one": "bogus"},
        {"p2_zero": "cw"},
    ],
)
def test_bad_thresholds_raise(kw):
    with pytest.raises(ValueError, match="threshold|order|must"):
        NRLConfig(**kw)


def test_oracle_probabilities_recover_subtractive_noise():
    gen = torch.Generator().manual_seed(0)
    clean = (torch.rand(300, 5, generator=gen) < 0.4).float()
    noisy = torch.from_numpy(inject_noise(clean.numpy(), sub_rate=0.4, seed=0).noisy).float()
    oracle = clean * 0.99 + (1 - clean) * 0.01  # a perfect model
    r = nrl_update(noisy, oracle, NRLConfig(p1_zero=0.94, p2_zero=0.54, p1_one=0.0, p2_one=0.2))
    torch.testing.assert_close(r.labels, clean)
    s = correction_stats(noisy, clean, r)
    assert s["flip1_precision"] == 1.0 and s["flip1_recall"] == 1.0
    assert s["label_error"] == 0.0
    assert math.isnan(s["flip0_precision"])  # no 1->0 flip happened


def test_decisions_restart_from_y_start():
    y = torch.tensor([[0.0], [1.0]])
    first = nrl_update(y, torch.tensor([[0.99], [0.9]]), NRLConfig())
    second = nrl_update(y, torch.tensor([[0.1], [0.9]]), NRLConfig())
    assert first.labels[0, 0] == 1 and second.labels[0, 0] == 0
