import pytest
import timm
import torch
from rsim.slimming import PAPER_WIDTHS, SlicedAttention, keep_count, measure_flops, slim, vit_flops
from rsim.slimming.slim import attention_indices
from rsim.slimming.tasks import forward_at_width

torch.set_num_threads(1)


def tiny_vit(**kw):
    torch.manual_seed(0)
    args = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4, num_classes=5, in_chans=3)
    args.update(kw)
    return timm.create_model("vit_small_patch16_224", pretrained=False, **args).eval()


@pytest.mark.parametrize("mode", ["width", "heads"])
@pytest.mark.parametrize("scale", ["sliced", "original"])
def test_full_width_is_identity(mode, scale):
    model = tiny_vit()
    x = torch.randn(3, 3, 32, 32)
    slim_model = slim(model, 1.0, mode, scale).eval()
    assert any(isinstance(m, SlicedAttention) for m in slim_model.modules())
    torch.testing.assert_close(slim_model(x), model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("s", PAPER_WIDTHS)
def test_shapes_and_physical_size(s):
    model = tiny_vit()
    x = torch.randn(2, 3, 32, 32)
    small = slim(model, s).eval()
    assert small(x).shape == (2, 5)
    attn = small.blocks[0].attn
    dims = keep_count(8, s)
    assert attn.qkv.weight.shape == (3 * 4 * dims, 32)
    assert attn.proj.weight.shape == (32, 4 * dims)
    assert small.blocks[0].mlp.fc1.weight.shape == (keep_count(128, s), 32)
    n_small = sum(p.numel() for p in small.parameters())
    n_full = sum(p.numel() for p in model.parameters())
    assert (n_small < n_full) == (s < 1)
    # the original is untouched
    assert model.blocks[0].attn.qkv.weight.shape == (96, 32)


def test_first_k_dims_of_every_head_are_kept():
    model = tiny_vit()
    small = slim(model, 0.5)
    w_full = model.blocks[1].attn.qkv.weight.reshape(3, 4, 8, 32)
    w_small = small.blocks[1].attn.qkv.weight.reshape(3, 4, 4, 32)
    torch.testing.assert_close(w_small, w_full[:, :, :4])
    p_full = model.blocks[1].attn.proj.weight.reshape(32, 4, 8)
    torch.testing.assert_close(small.blocks[1].attn.proj.weight.reshape(32, 4, 4), p_full[:, :, :4])
    torch.testing.assert_close(small.blocks[1].mlp.fc2.weight, model.blocks[1].mlp.fc2.weight[:, :64])


def test_heads_mode_keeps_whole_heads():
    idx, heads, dims = attention_indices(4, 8, 0.5, "heads")
    assert (heads, dims) == (2, 8) and idx.tolist() == list(range(16))
    idx, heads, dims = attention_indices(4, 8, 0.25, "width")
    assert (heads, dims) == (4, 2) and idx.tolist() == [0, 1, 8, 9, 16, 17, 24, 25]
    small = slim(tiny_vit(), 0.5, "heads")
    assert small.blocks[0].attn.num_heads == 2 and small.blocks[0].attn.head_dim == 8


def test_attention_scale_option_changes_output():
    model = tiny_vit()
    x = torch.randn(2, 3, 32, 32)
    a = slim(model, 0.25, attn_scale="sliced").eval()
    b = slim(model, 0.25, attn_scale="original").eval()
    assert a.blocks[0].attn.scale == pytest.approx(2**-0.5)
    assert b.blocks[0].attn.scale == pytest.approx(8**-0.5)
    assert not torch.allclose(a(x), b(x))


def test_keep_count_bounds():
    assert keep_count(64, 1 / 64) == 1 and keep_count(64, 0.001) == 1 and keep_count(64, 1.0) == 64
    assert keep_count(1536, 0.75) == 1152
    with pytest.raises(ValueError, match="width multiplier"):
        keep_count(64, 0.0)
    with pytest.raises(ValueError, match="width multiplier"):
        slim(tiny_vit(), 1.5)


def test_non_vit_is_rejected():
    with pytest.raises(ValueError, match="no timm Attention"):
        slim(torch.nn.Sequential(torch.nn.Linear(3, 3)), 0.5)


@pytest.mark.parametrize("mode", ["width", "heads"])
@pytest.mark.parametrize("s", [1.0, 0.5, 0.1, 1 / 64])
def test_flops_analytic_matches_measured(mode, s):
    model = tiny_vit()
    x = torch.zeros(1, 3, 32, 32)
    small = slim(model, s, mode)
    for scope in ("total", "blocks"):
        assert measure_flops(small, x, scope) == vit_flops(model, s, mode, scope)


def test_block_flops_scale_linearly_and_vit_b_patch_share():
    model = tiny_vit()
    full = vit_flops(model, 1.0, scope="blocks")
    assert vit_flops(model, 0.5, scope="blocks") == full // 2
    with torch.device("meta"):
        vit_b = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0)
    share = 1 - vit_flops(vit_b, 1.0, scope="blocks") / vit_flops(vit_b, 1.0, scope="total")
    assert 0.005 < share < 0.01  # patch embedding ~0.7 % of ViT-B/16 FLOPs (dossier arithmetic)


@pytest.mark.parametrize("s", [1.0, 0.5, 0.1])
def test_training_forward_equals_physical_slim(s):
    model = tiny_vit(num_classes=0)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(forward_at_width(model, x, s), slim(model, s).eval()(x), atol=1e-5, rtol=1e-5)


def test_csmae_backbone_slims():
    csmoe = pytest.importorskip("rsim.csmoe")
    torch.manual_seed(0)
    model = csmoe.CrossSensorViT(
        img_size=30, patch_size=15, embed_dim=32, num_heads=4, specific_depth=1, shared_depth=1
    ).eval()
    x = torch.randn(2, 12, 30, 30)
    full = model(x)
    same = slim(model, 1.0).eval()(x)
    for key in full:
        torch.testing.assert_close(same[key], full[key], atol=1e-5, rtol=1e-5)
    half = slim(model, 0.5).eval()
    assert half.blocks[0].mlp.fc1.out_features == 64
    assert half(x)["s2"].shape == (2, 32)
