import pytest
import torch
import torch.nn.functional as F
from rsim.csmoe.models.backbone import CrossSensorViT
from rsim.csmoe.models.profile import count_flops, model_cost
from rsim.csmoe.models.soft_moe import SoftMoE

torch.set_num_threads(1)


def loop_reference(moe: SoftMoE, x: torch.Tensor) -> torch.Tensor:
    """Soft MoE written with explicit loops over experts and slots (Puigcerver et al., Alg. 1)."""
    phi = moe.phi
    xn, phin = (F.normalize(x, dim=-1), F.normalize(phi, dim=0)) if moe.normalize else (x, phi)
    d = x.shape[-1]
    n, p = moe.num_experts, moe.slots_per_expert
    logits = (xn @ phin.reshape(d, n * p)) * (moe.scale if moe.scale is not None else 1.0)  # [b, m, n*p]
    dispatch = logits.softmax(dim=1)
    combine = logits.softmax(dim=2)
    slots = dispatch.transpose(1, 2) @ x  # [b, n*p, d]
    outs = []
    for s in range(n * p):
        e = s // p
        h = F.gelu(slots[:, s] @ moe.fc1_weight[e] + moe.fc1_bias[e])
        outs.append(h @ moe.fc2_weight[e] + moe.fc2_bias[e])
    return combine @ torch.stack(outs, dim=1)


@pytest.mark.parametrize("normalize", [True, False])
def test_soft_moe_matches_loop_reference(normalize):
    torch.manual_seed(0)
    moe = SoftMoE(16, num_experts=3, slots_per_expert=2, normalize=normalize)
    with torch.no_grad():
        moe.fc1_bias.normal_()
        moe.fc2_bias.normal_()
        if moe.scale is not None:
            moe.scale.fill_(3.0)
    x = torch.randn(2, 9, 16)
    torch.testing.assert_close(moe(x), loop_reference(moe, x), atol=1e-5, rtol=1e-4)


def test_identical_tokens_and_experts_reduce_to_dense_mlp():
    torch.manual_seed(1)
    dense = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.GELU(), torch.nn.Linear(32, 8))
    moe = SoftMoE(8, num_experts=4, slots_per_expert=3, hidden_dim=32)
    moe.load_dense_mlp(dense[0].weight, dense[0].bias, dense[2].weight, dense[2].bias)
    x = torch.randn(2, 1, 8).expand(2, 7, 8)  # every token the same: every slot sees that token
    torch.testing.assert_close(moe(x), dense(x), atol=1e-5, rtol=1e-4)


def test_usage_statistics_and_gradients():
    torch.manual_seed(2)
    moe = SoftMoE(8, num_experts=4, slots_per_expert=2)
    x = torch.randn(3, 5, 8, requires_grad=True)
    moe(x).square().sum().backward()
    assert moe.last_expert_usage is not None and moe.last_expert_usage.shape == (4,)
    assert moe.last_expert_usage.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert moe.last_slot_usage is not None and moe.last_slot_usage.shape == (8,)
    for p in (moe.phi, moe.scale, moe.fc1_weight, moe.fc2_bias, x):
        assert p.grad is not None and p.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\[B, M, 8\]"):
        moe(torch.zeros(2, 8))
    with pytest.raises(ValueError, match="num_experts"):
        SoftMoE(8, 0, 1)


def test_backbone_records_per_sensor_usage():
    torch.manual_seed(0)
    model = CrossSensorViT(
        embed_dim=32,
        num_heads=2,
        specific_depth=2,
        shared_depth=1,
        moe_layers=["shared", "specific_second_half"],
        num_experts=4,
        slots_per_expert=2,
    )
    with torch.no_grad():
        model(torch.rand(2, 12, 120, 120))
    usage = model.last_moe_usage
    assert set(usage) == {"s1", "s2"}
    assert set(usage["s1"]) == {"blocks.0", "blocks_s1.1"}
    assert set(usage["s2"]) == {"blocks.0", "blocks_s2.1"}
    assert not torch.equal(usage["s1"]["blocks.0"], usage["s2"]["blocks.0"])


def test_flops_and_params_reflect_slots():
    d, h, n, p, m = 32, 128, 4, 2, 65
    kw = dict(embed_dim=d, num_heads=2, specific_depth=1, shared_depth=1)
    torch.manual_seed(0)
    with torch.device("meta"):
        dense = CrossSensorViT(**kw)
        moe = CrossSensorViT(**kw, moe_layers=["shared"], num_experts=n, slots_per_expert=p)
    f_dense, f_moe = count_flops(dense), count_flops(moe)
    # one shared block, run once per sensor: dense MLP on m tokens vs experts on n*p slots plus routing
    # einsums
    mlp_dense = 2 * (2 * m * d * h)
    mlp_moe = 2 * (2 * n * p * d * h) + 3 * (2 * m * d * n * p)
    assert f_dense - f_moe == 2 * (mlp_dense - mlp_moe)
    cost = model_cost(moe)
    expert = 2 * d * h + h + d
    dense_params = sum(t.numel() for t in dense.parameters())
    assert cost.total_params == dense_params - expert + n * expert + d * n * p + 1
    assert cost.active_params_per_token == cost.total_params - (n - 1) * expert
    assert cost.moe_layers == 1 and cost.flops_per_image == f_moe
