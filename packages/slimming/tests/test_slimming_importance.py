"""Importance-ordered slimming (``order='l1'``): the highest-L1 units / heads / channels are kept."""

import pytest
import timm
import torch
from rsim.slimming import slim
from rsim.slimming.models.croma import CromaCrossAttention, croma_alibi_bias
from rsim.slimming.slim import SlicedAttention, slim_attention
from timm.models.vision_transformer import Attention

torch.set_num_threads(1)


def tiny_vit():
    torch.manual_seed(0)
    return timm.create_model(
        "vit_small_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4,
        num_classes=0,
    ).eval()  # fmt: skip


def test_l1_full_width_is_identity_and_order_is_validated():
    model = tiny_vit()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        for mode in ("width", "heads"):
            torch.testing.assert_close(slim(model, 1.0, mode, order="l1")(x), model(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="order must be"):
        slim(model, 0.5, order="random")


def test_l1_keeps_the_largest_mlp_units_and_head_dims():
    model = tiny_vit()
    mlp, attn = model.blocks[0].mlp, model.blocks[0].attn
    with torch.no_grad():
        mlp.fc1.weight[[5, 17, 100]] *= 20  # three dominant hidden units
        attn.qkv.weight.view(3, 4, 8, 32)[:, 2, 7] *= 20  # head 2, dim 7 (q, k and v rows)
    small = slim(model, 0.25, order="l1")
    score = mlp.fc1.weight.abs().sum(1) + mlp.fc2.weight.abs().sum(0)
    kept = score.topk(32).indices.sort().values
    assert {5, 17, 100} <= set(kept.tolist())
    torch.testing.assert_close(small.blocks[0].mlp.fc1.weight, mlp.fc1.weight[kept])
    torch.testing.assert_close(small.blocks[0].mlp.fc2.weight, mlp.fc2.weight[:, kept])
    qkv = small.blocks[0].attn.qkv.weight.view(3, 4, 2, 32)  # 2 of 8 dims per head
    full = attn.qkv.weight.view(3, 4, 8, 32)
    assert any(torch.equal(qkv[:, 2, j], full[:, 2, 7]) for j in range(2))
    prefix = slim(model, 0.25)
    assert not torch.equal(prefix.blocks[0].mlp.fc1.weight, small.blocks[0].mlp.fc1.weight)


def _zero_other_heads(attn_proj: torch.nn.Linear, keep_head: int, heads: int, head_dim: int) -> None:
    with torch.no_grad():
        w = attn_proj.weight.view(-1, heads, head_dim)
        for h in range(heads):
            if h != keep_head:
                w[:, h] = 0


def test_l1_heads_mode_keeps_the_strongest_head_and_its_alibi_bias():
    torch.manual_seed(0)
    attn = Attention(32, num_heads=4).eval()
    with torch.no_grad():
        attn.qkv.weight.view(3, 4, 8, 32)[:, 2] *= 5  # head 2 dominates
    bias = croma_alibi_bias(4, 3)  # [1, 4, 9, 9], a different slope per head
    small = slim_attention(attn, 0.25, "heads", order="l1")
    assert isinstance(small, SlicedAttention) and small.kept_heads == [2]
    x = torch.randn(2, 9, 32)
    reference = Attention(32, num_heads=4).eval()
    reference.load_state_dict(attn.state_dict())
    _zero_other_heads(reference.proj, 2, 4, 8)  # dropped heads contribute nothing; bias of head 2 applies
    with torch.no_grad():
        torch.testing.assert_close(small(x, attn_mask=bias), reference(x, attn_mask=bias), atol=1e-5, rtol=1e-5)
    torch.manual_seed(1)
    cross = CromaCrossAttention(32, 4).eval()
    with torch.no_grad():
        cross.q.weight.view(4, 8, 32)[1] *= 5
        cross.k.weight.view(4, 8, 32)[1] *= 5
    ctx = torch.randn(2, 9, 32)
    small_cross = slim(torch.nn.ModuleList([cross]), 0.25, "heads", order="l1")[0]
    assert small_cross.kept_heads == [1]
    ref_cross = CromaCrossAttention(32, 4).eval()
    ref_cross.load_state_dict(cross.state_dict())
    _zero_other_heads(ref_cross.proj, 1, 4, 8)
    with torch.no_grad():
        torch.testing.assert_close(small_cross(x, ctx, bias), ref_cross(x, ctx, bias), atol=1e-5, rtol=1e-5)


def test_l1_cnn_keeps_largest_batchnorm_gamma():
    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=0)
    bn = model.layer1[0].bn1
    with torch.no_grad():
        bn.weight.uniform_(0.1, 0.2)
        bn.weight[[3, 40]] = 5.0
        bn.running_var.uniform_(0.5, 1.5)
    model.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(slim(model, 1.0, order="l1")(x), model(x), atol=1e-5, rtol=1e-5)
        small = slim(model, 1 / 32, order="l1")  # 2 of 64 channels
        block = small.layer1[0]
        assert block.conv1.out_channels == 2
        torch.testing.assert_close(block.bn1.weight, torch.tensor([5.0, 5.0]))
        torch.testing.assert_close(block.bn1.running_var, bn.running_var[[3, 40]])
        torch.testing.assert_close(block.conv2.weight, model.layer1[0].conv2.weight[:, [3, 40]])
        assert small(x).shape == (1, 512)


def test_l1_soft_moe_units_shared_by_experts():
    csmoe = pytest.importorskip("rsim.csmoe")
    torch.manual_seed(0)
    moe = csmoe.SoftMoE(16, num_experts=2, slots_per_expert=2, hidden_dim=32)
    with torch.no_grad():
        moe.fc1_weight[:, :, 9] *= 30
    small = slim(torch.nn.ModuleList([moe]), 0.125, order="l1")[0]  # 4 of 32 units
    assert small.fc1_weight.shape == (2, 16, 4)
    assert any(torch.equal(small.fc1_weight[:, :, j], moe.fc1_weight[:, :, 9]) for j in range(4))
