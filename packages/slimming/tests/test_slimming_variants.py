"""Residual-width (embed) slimming with its FLOPs accounting, and channel slimming of ResNet-style CNNs."""

import csv
import math

import pytest
import timm
import torch
from rsim.slimming import PAPER_WIDTHS, keep_count, measure_flops, slim, slim_residual, vit_flops
from rsim.slimming.cli import main
from rsim.slimming.data import write_eurosat_fixture
from rsim.slimming.models import PrithviEncoder, build_croma, build_dofa, encode, load_encoder
from rsim.slimming.sweep import accuracy_at_budget
from safetensors.torch import save_file
from timm.models.resnet import BasicBlock, Bottleneck

torch.set_num_threads(1)


def tiny_vit(**kw):
    torch.manual_seed(0)
    args = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4, num_classes=5, in_chans=3)
    args.update(kw)
    return timm.create_model("vit_small_patch16_224", pretrained=False, **args).eval()


# -- residual width ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["width", "heads"])
@pytest.mark.parametrize("s", [1.0, 0.5, 0.1, 1 / 64])
def test_embed_flops_analytic_matches_measured(mode, s):
    model = tiny_vit(init_values=1e-2, reg_tokens=1)  # LayerScale and a register token are sliced too
    x = torch.zeros(1, 3, 32, 32)
    small = slim(model, s, mode, embed=True).eval()
    keep = keep_count(32, s)
    assert small.pos_embed.shape[-1] == small.cls_token.shape[-1] == small.reg_token.shape[-1] == keep
    assert small.blocks[0].ls1.gamma.shape == (keep,) and small.norm.normalized_shape == (keep,)
    assert small(x).shape == (1, 5) and small.forward_head(small.forward_features(x), pre_logits=True).shape[1] == keep
    for scope in ("total", "blocks"):
        assert measure_flops(small, x, scope) == vit_flops(model, s, mode, scope, embed=True)


def test_embed_full_width_is_identity_and_input_untouched():
    model = tiny_vit()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(slim(model, 1.0, embed=True)(x), model(x), atol=1e-5, rtol=1e-5)
    slim_residual(model, 0.5)
    assert model.pos_embed.shape[-1] == 32 and model.blocks[0].attn.qkv.weight.shape == (96, 32)
    with pytest.raises(TypeError, match="ResNet"):
        slim_residual(timm.create_model("resnet18", pretrained=False, num_classes=0), 0.5)


def test_embed_reaches_one_percent_flops_for_vit_b():
    with torch.device("meta"):
        vit_b = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0)
    full = {sc: vit_flops(vit_b, 1.0, scope=sc) for sc in ("total", "blocks")}
    rel = {
        (s, sc, e): vit_flops(vit_b, s, scope=sc, embed=e) / full[sc]
        for s in PAPER_WIDTHS
        for sc in ("total", "blocks")
        for e in (False, True)
    }
    assert min(v for (s, sc, e), v in rel.items() if not e and sc == "blocks") == pytest.approx(1 / 64)
    # s = 0.1: linears at ~s^2 = 1 %, attention matmuls (~4 % of ViT-B/16 FLOPs) at s, patch embedding at s
    assert rel[(0.05, "total", True)] < 0.01 < rel[(0.1, "total", True)] < 0.02
    widths = list(PAPER_WIDTHS)
    budget = accuracy_at_budget([rel[(s, "total", True)] for s in widths], [1 - 0.3 * (1 - s) for s in widths])
    assert 0.7 < budget < 0.8  # interpolated between s = 0.1 and s = 0.05
    assert math.isnan(accuracy_at_budget([rel[(s, "total", False)] for s in widths], widths))  # 1 % unreachable


def test_embed_for_dofa_prithvi_croma():
    torch.manual_seed(0)
    dofa = build_dofa(embed_dim=32, depth=2, num_heads=4, img_size=32, wavelengths=(0.49, 0.56, 0.665)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(slim(dofa, 1.0, embed=True)(x), dofa(x), atol=1e-5, rtol=1e-5)
        small = slim(dofa, 0.25, embed=True)
        weight, bias = small.patch_embed.kernel(small.wavelengths)
        full_weight, full_bias = dofa.patch_embed.kernel(dofa.wavelengths)
        torch.testing.assert_close(weight, full_weight[:8])  # the first 8 generated output channels
        torch.testing.assert_close(bias, full_bias[:8])
        assert small(x).shape == (2, 8)
        prithvi = PrithviEncoder(
            img_size=32, patch_size=16, num_frames=2, in_chans=6, embed_dim=32, depth=2, num_heads=4
        )
        video = torch.randn(2, 6, 2, 32, 32)
        torch.testing.assert_close(slim(prithvi, 1.0, embed=True)(video), prithvi(video), atol=1e-5, rtol=1e-5)
        assert slim(prithvi, 0.5, embed=True)(video).shape == (2, 16)
        croma = build_croma(modality="both", embed_dim=32, depth=2, num_heads=4, img_size=16).eval()
        xc = torch.randn(2, 14, 16, 16)
        torch.testing.assert_close(encode(slim(croma, 1.0, embed=True), xc), encode(croma, xc), atol=1e-5, rtol=1e-5)
        half = slim(croma, 0.5, embed=True)
        assert encode(half, xc).shape == (2, 3 * 16)
        full_blocks = measure_flops(croma, xc[:1], "blocks")
        assert measure_flops(half, xc[:1], "blocks") < 0.3 * full_blocks  # ~ s^2 for the linears


def test_sweep_cli_with_dofa_and_slim_embed(tmp_path):
    euro = write_eurosat_fixture(tmp_path / "eurosat", num_classes=2, per_class=5, size=16)
    kwargs = '{"embed_dim": 32, "depth": 2, "num_heads": 4, "img_size": 32}'
    out = tmp_path / "sweep"
    args = ["sweep", "--model", "dofa", "--model-kwargs", kwargs, "--img-size", "32", "--eurosat", str(euro)]
    args += ["--widths", "1,0.1,0.05,1/64", "--probes", "knn", "--knn-k", "3", "--slim-embed", "--order", "l1"]
    assert main([*args, "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert [(r["slim_embed"], r["order"]) for r in rows] == [("True", "l1")] * 4
    rel = [float(r["rel_flops_blocks"]) for r in rows]
    assert rel[0] == 1.0 and rel[-1] < 0.01
    summary = list(csv.DictReader(open(out / "summary.csv")))
    assert summary[0]["relative_at_0.01_flops_blocks"] != "nan"


# -- CNN channel slimming ---------------------------------------------------------------------------------------
def _randomise_bn(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)


@pytest.mark.parametrize("name", ["resnet18", "resnet26"])
def test_resnet_full_width_identity_and_smaller(name):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=0)
    _randomise_bn(model)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(slim(model, 1.0)(x), model(x), atol=1e-5, rtol=1e-5)
        small = slim(model, 0.25).eval()
        assert small(x).shape == model(x).shape  # residual (output) width unchanged
    block = small.layer2[0]
    full = model.layer2[0]
    assert block.conv1.out_channels == full.conv1.out_channels // 4
    torch.testing.assert_close(block.bn1.running_mean, full.bn1.running_mean[: block.conv1.out_channels])
    torch.testing.assert_close(
        block.conv2.weight, full.conv2.weight[: block.conv2.out_channels, : block.conv1.out_channels]
    )
    assert block.downsample is not None and block.downsample[0].weight.shape == full.downsample[0].weight.shape
    assert measure_flops(small, x[:1], "blocks") < 0.5 * measure_flops(model, x[:1], "blocks")
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("s", [1.0, 0.5, 0.25, 1 / 64])
def test_bottleneck_flops_analytic(s):
    torch.manual_seed(0)
    block = Bottleneck(64, 16).eval()  # 64 -> width 16 -> 64 (expansion 4), stride 1, no shortcut conv
    x = torch.randn(1, 64, 8, 8)
    small = slim(torch.nn.Sequential(block), s)[0]
    k = keep_count(16, s)
    expected = 2 * 8 * 8 * (64 * k + 9 * k * k + k * 64)
    assert measure_flops(torch.nn.Sequential(small), x) == expected
    basic = BasicBlock(16, 16).eval()
    xb = torch.randn(1, 16, 8, 8)
    kb = keep_count(16, s)
    assert measure_flops(slim(torch.nn.Sequential(basic), s), xb) == 2 * 8 * 8 * (9 * 16 * kb + 9 * kb * 16)


def test_ssl4eo_resnet50_layout_and_random_weights(tmp_path):
    with torch.device("meta"):
        real = load_encoder("ssl4eo_resnet50")
    shapes = {k: tuple(v.shape) for k, v in real.state_dict().items()}
    assert shapes["conv1.weight"] == (64, 13, 7, 7) and shapes["layer4.2.conv3.weight"] == (2048, 512, 1, 1)
    assert not any(k.startswith("fc.") for k in shapes)
    torch.manual_seed(0)
    src = load_encoder("ssl4eo_resnet50", model_name="resnet18")
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in src.state_dict().items()}
    state = {k: v.abs() + 0.5 if k.endswith("running_var") else v for k, v in state.items()}
    state["fc.weight"], state["fc.bias"] = torch.randn(19, 512), torch.randn(19)  # a stored classifier is ignored
    save_file(state, tmp_path / "r.safetensors")
    model = load_encoder("ssl4eo_resnet50", tmp_path / "r.safetensors", model_name="resnet18")
    torch.testing.assert_close(model.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    x = torch.randn(2, 13, 32, 32)
    with torch.no_grad():
        assert encode(slim(model, 0.1), x).shape == (2, 512)
        torch.testing.assert_close(encode(slim(model, 1.0), x), encode(model, x), atol=1e-4, rtol=1e-4)


def test_csmoe_soft_moe_experts_are_sliced():
    csmoe = pytest.importorskip("rsim.csmoe")
    torch.manual_seed(0)
    model = csmoe.CrossSensorViT(
        img_size=30, patch_size=15, embed_dim=32, num_heads=4, specific_depth=2, shared_depth=1,
        moe_layers=("shared",), num_experts=2, slots_per_expert=2,
    ).eval()  # fmt: skip
    x = torch.randn(2, 12, 30, 30)
    with torch.no_grad():
        full = model(x)
        same = slim(model, 1.0).eval()(x)
        for key in full:
            torch.testing.assert_close(same[key], full[key], atol=1e-5, rtol=1e-5)
        half = slim(model, 0.5).eval()
        moe, ref = half.blocks[0].mlp, model.blocks[0].mlp
        assert moe.hidden_dim == 64 and moe.fc1_weight.shape == (2, 32, 64) and moe.fc2_weight.shape == (2, 64, 32)
        torch.testing.assert_close(moe.fc2_weight, ref.fc2_weight[:, :64])
        torch.testing.assert_close(moe.phi, ref.phi)  # routing unchanged
        assert half(x)["s2"].shape == (2, 32)
        assert measure_flops(half, x[:1], "blocks") < 0.55 * measure_flops(model, x[:1], "blocks")
        # residual width too (generic path: patch_embed*, cls_token*, pos_embed, Soft-MoE phi / experts)
        for key, value in slim(model, 1.0, embed=True)(x).items():
            torch.testing.assert_close(value, full[key], atol=1e-5, rtol=1e-5)
        thin = slim(model, 0.5, embed=True).eval()
        assert thin.blocks[0].mlp.phi.shape == (16, 2, 2) and thin.cls_token_s2.shape == (1, 1, 16)
        assert {k: v.shape for k, v in thin(x).items()} == {"s1": (2, 16), "s2": (2, 16)}
        assert measure_flops(thin, x[:1], "blocks") < 0.3 * measure_flops(model, x[:1], "blocks")
