"""DOFA and CROMA loaders: random weights written in the *official* key layouts, loaded from local files.

Key layouts are spelled out here by hand (not derived from our modules), from the released code structure:
DOFA - zhu-xlab/DOFA ``models_dwv.py`` / torchgeo ``models/dofa.py`` (checkpoint ``dofa_base_patch16_224-*.pth``);
CROMA - antofuller/CROMA ``use_croma.py`` (``CROMA_base.pt``: dict of ``s1_encoder``, ``s1_GAP_FFN``,
``s2_encoder``, ``s2_GAP_FFN``, ``joint_encoder`` state dicts).
"""

import math

import pytest
import torch
import torch.nn.functional as F
from rsim.slimming import measure_flops, slim
from rsim.slimming.models import encode, input_channels, load_encoder
from rsim.slimming.models.croma import alibi_slopes, croma_alibi_bias

torch.set_num_threads(1)

D, DEPTH, HEADS = 32, 2, 4


def _ln(state, key, dim):
    state[f"{key}.weight"] = 1 + 0.1 * torch.randn(dim)
    state[f"{key}.bias"] = 0.1 * torch.randn(dim)


def _lin(state, key, out, inp, bias=True, std=0.2):
    state[f"{key}.weight"] = std * torch.randn(out, inp)
    if bias:
        state[f"{key}.bias"] = 0.05 * torch.randn(out)


def official_dofa_state(num_patches, k=16, wv=128, ffn=2048):
    torch.manual_seed(0)
    st = {"cls_token": torch.randn(1, 1, D), "pos_embed": torch.randn(1, 1 + num_patches, D)}
    g = "patch_embed.weight_generator"
    st[f"{g}.weight_tokens"] = 0.02 * torch.randn(128, wv)
    st[f"{g}.bias_token"] = 0.02 * torch.randn(1, wv)
    t = f"{g}.transformer_encoder.layers.0"
    _lin(st, f"{t}.self_attn.in_proj", 3 * wv, wv, std=0.05)
    st[f"{t}.self_attn.in_proj_weight"] = st.pop(f"{t}.self_attn.in_proj.weight")
    st[f"{t}.self_attn.in_proj_bias"] = st.pop(f"{t}.self_attn.in_proj.bias")
    _lin(st, f"{t}.self_attn.out_proj", wv, wv, std=0.05)
    _lin(st, f"{t}.linear1", ffn, wv, std=0.02)
    _lin(st, f"{t}.linear2", wv, ffn, std=0.02)
    _ln(st, f"{t}.norm1", wv)
    _ln(st, f"{t}.norm2", wv)
    _lin(st, f"{g}.fc_weight", k * k * D, wv, std=0.1)
    _lin(st, f"{g}.fc_bias", D, wv, std=0.1)
    _lin(st, "patch_embed.fclayer.w1", wv, wv, std=0.05)
    _lin(st, "patch_embed.fclayer.w2", wv, wv, std=0.05)
    for i in range(DEPTH):
        b = f"blocks.{i}"
        _ln(st, f"{b}.norm1", D)
        _lin(st, f"{b}.attn.qkv", 3 * D, D)
        _lin(st, f"{b}.attn.proj", D, D)
        _ln(st, f"{b}.norm2", D)
        _lin(st, f"{b}.mlp.fc1", 4 * D, D)
        _lin(st, f"{b}.mlp.fc2", D, 4 * D)
    _ln(st, "fc_norm", D)
    _lin(st, "head", 45, D)  # a fine-tuning head is dropped
    return st


DOFA_KW = {"embed_dim": D, "depth": DEPTH, "num_heads": HEADS, "img_size": 32, "wavelengths": (0.49, 0.56, 0.665)}


def test_dofa_official_layout_loads_and_is_wavelength_conditioned(tmp_path):
    # 32 px, patch 16, padding 1 -> (32 + 2 - 16) // 16 + 1 = 2 patches per side
    state = official_dofa_state(num_patches=4)
    torch.save(state, tmp_path / "dofa_base_patch16_224.pth")
    model = load_encoder("dofa", tmp_path / "dofa_base_patch16_224.pth", **DOFA_KW)
    torch.testing.assert_close(model.norm.weight, state["fc_norm.weight"])  # fc_norm -> norm
    gen = model.patch_embed.weight_generator
    torch.testing.assert_close(gen.fc_weight.weight, state["patch_embed.weight_generator.fc_weight.weight"])
    assert input_channels(model) == 3
    torch.manual_seed(1)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = encode(model, x)
        assert feats.shape == (2, D) and torch.isfinite(feats).all()
        # bands are a set: permuting channels together with their wavelengths changes nothing ...
        perm = [2, 0, 1]
        same = model(x[:, perm], [DOFA_KW["wavelengths"][i] for i in perm])
        torch.testing.assert_close(same, feats, atol=1e-4, rtol=1e-4)
        # ... but other wavelengths give another kernel
        assert not torch.allclose(model(x, [0.842, 1.61, 2.19]), feats, atol=1e-4)
        # a 4-band input with its own wavelengths works with the same weights (one-for-all)
        assert model(torch.randn(2, 4, 32, 32), [0.49, 0.56, 0.665, 0.842]).shape == (2, D)
        torch.testing.assert_close(encode(slim(model, 1.0), x), feats, atol=1e-5, rtol=1e-5)
        small = slim(model, 0.25)
        assert small.blocks[0].attn.qkv.weight.shape == (3 * 4 * 2, D)
        assert encode(small, x).shape == (2, D)


def test_dofa_released_file_without_head_norm_and_bad_files(tmp_path):
    state = official_dofa_state(num_patches=4)
    for key in ("fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"):
        del state[key]  # the torchgeo-hosted weights carry neither
    torch.save({"model": state}, tmp_path / "released.pth")
    model = load_encoder("dofa", tmp_path / "released.pth", **DOFA_KW)
    torch.testing.assert_close(model.norm.weight, torch.ones(D))
    del state["blocks.1.mlp.fc2.weight"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(KeyError, match=r"broken\.pth.*blocks\.1\.mlp\.fc2\.weight"):
        load_encoder("dofa", tmp_path / "broken.pth", **DOFA_KW)
    with pytest.raises(ValueError, match="3 wavelengths"):
        model(torch.randn(1, 5, 32, 32))


def _croma_self_layers(st, prefix, depth):
    for i in range(depth):
        a, f = f"{prefix}.{i}.0", f"{prefix}.{i}.1"
        _ln(st, f"{a}.input_norm", D)
        _lin(st, f"{a}.to_qkv", 3 * D, D, bias=False)
        _lin(st, f"{a}.to_out", D, D)
        _ln(st, f"{f}.input_norm", D)
        _lin(st, f"{f}.net.0", 2 * 4 * D, D)
        _lin(st, f"{f}.net.3", D, 4 * D)


def official_croma_checkpoint(depth=DEPTH, p=8):
    torch.manual_seed(0)
    ckpt = {}
    for group, chans, n in (("s1", 2, depth // 2), ("s2", 12, depth)):
        enc = {}
        _lin(enc, "linear_input", D, p * p * chans, std=0.05)
        _croma_self_layers(enc, "transformer.layers", n)
        _ln(enc, "transformer.norm_out", D)
        ckpt[f"{group}_encoder"] = enc
        gap = {}
        _ln(gap, "0", D)
        _lin(gap, "1", 4 * D, D)
        _lin(gap, "3", D, 4 * D)
        ckpt[f"{group}_GAP_FFN"] = gap
    joint = {}
    for i in range(depth // 2):
        a, c, f = f"layers.{i}.0", f"layers.{i}.1", f"layers.{i}.2"
        _ln(joint, f"{a}.input_norm", D)
        _lin(joint, f"{a}.to_qkv", 3 * D, D, bias=False)
        _lin(joint, f"{a}.to_out", D, D)
        _ln(joint, f"{c}.input_norm", D)
        for name in ("to_q", "to_k", "to_v"):
            _lin(joint, f"{c}.{name}", D, D, bias=False)
        _lin(joint, f"{c}.to_out", D, D)
        _ln(joint, f"{f}.input_norm", D)
        _lin(joint, f"{f}.net.0", 2 * 4 * D, D)
        _lin(joint, f"{f}.net.3", D, 4 * D)
    _ln(joint, "norm_out", D)
    ckpt["joint_encoder"] = joint
    return ckpt


def _reference_bias(grid, heads):
    pts = [(r, c) for r in range(grid) for c in range(grid)]
    slopes = [2 ** (-8 / heads * (h + 1)) for h in range(heads)]  # ALiBi slopes for a power-of-two head count
    return torch.tensor([[[-m * math.dist(a, b) for b in pts] for a in pts] for m in slopes])


def _reference_attn(st, pre, x, ctx, bias):
    """Plain-torch CROMA (cross-)attention from the official keys: pre-norm, ALiBi bias, softmax."""
    ln = lambda t: F.layer_norm(t, (D,), st[f"{pre}.input_norm.weight"], st[f"{pre}.input_norm.bias"])  # noqa: E731
    xn = ln(x)
    if ctx is None:
        q, k, v = (xn @ st[f"{pre}.to_qkv.weight"].T).chunk(3, dim=-1)
    else:
        cn = ln(ctx)
        q, k, v = xn @ st[f"{pre}.to_q.weight"].T, cn @ st[f"{pre}.to_k.weight"].T, cn @ st[f"{pre}.to_v.weight"].T
    heads = lambda t: t.reshape(t.shape[0], t.shape[1], HEADS, -1).transpose(1, 2)  # noqa: E731
    q, k, v = heads(q), heads(k), heads(v)
    att = (q @ k.transpose(-1, -2) * (D // HEADS) ** -0.5 + bias).softmax(-1)
    out = (att @ v).transpose(1, 2).reshape(x.shape)
    return out @ st[f"{pre}.to_out.weight"].T + st[f"{pre}.to_out.bias"]


def _reference_ffn(st, pre, x):
    h = F.layer_norm(x, (D,), st[f"{pre}.input_norm.weight"], st[f"{pre}.input_norm.bias"])
    h = h @ st[f"{pre}.net.0.weight"].T + st[f"{pre}.net.0.bias"]
    val, gate = h.chunk(2, dim=-1)
    return (val * F.gelu(gate)) @ st[f"{pre}.net.3.weight"].T + st[f"{pre}.net.3.bias"]


def _reference_encoder(enc, x, bias, p=8):
    b, _, hgt, wid = x.shape
    patches = [x[:, :, r : r + p, c : c + p].reshape(b, -1) for r in range(0, hgt, p) for c in range(0, wid, p)]
    h = torch.stack(patches, 1) @ enc["linear_input.weight"].T + enc["linear_input.bias"]
    n = len({k.split(".")[2] for k in enc if k.startswith("transformer.layers.")})
    for i in range(n):
        h = h + _reference_attn(enc, f"transformer.layers.{i}.0", h, None, bias)
        h = h + _reference_ffn(enc, f"transformer.layers.{i}.1", h)
    return F.layer_norm(h, (D,), enc["transformer.norm_out.weight"], enc["transformer.norm_out.bias"])


def _reference_gap(gap, h):
    h = F.layer_norm(h.mean(1), (D,), gap["0.weight"], gap["0.bias"])
    return F.gelu(h @ gap["1.weight"].T + gap["1.bias"]) @ gap["3.weight"].T + gap["3.bias"]


def test_alibi_bias():
    assert alibi_slopes(16)[:2] == pytest.approx([2**-0.5, 2**-1.0])
    assert alibi_slopes(8) == pytest.approx([2.0**-i for i in range(1, 9)])
    assert len(alibi_slopes(12)) == 12
    torch.testing.assert_close(croma_alibi_bias(HEADS, 3)[0], _reference_bias(3, HEADS).float())


def test_croma_official_checkpoint_matches_reference_forward(tmp_path):
    ckpt = official_croma_checkpoint()
    torch.save(ckpt, tmp_path / "CROMA_base.pt")
    kw = {"embed_dim": D, "depth": DEPTH, "num_heads": HEADS, "img_size": 16}
    model = load_encoder("croma", tmp_path / "CROMA_base.pt", modality="both", **kw)
    torch.manual_seed(2)
    sar, opt = torch.randn(2, 2, 16, 16), torch.randn(2, 12, 16, 16)
    bias = _reference_bias(2, HEADS).float()[None]
    with torch.no_grad():
        out = model(torch.cat([sar, opt], 1))
        ref_sar = _reference_encoder(ckpt["s1_encoder"], sar, bias)
        ref_opt = _reference_encoder(ckpt["s2_encoder"], opt, bias)
        torch.testing.assert_close(out["sar"], _reference_gap(ckpt["s1_GAP_FFN"], ref_sar), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(out["optical"], _reference_gap(ckpt["s2_GAP_FFN"], ref_opt), atol=1e-4, rtol=1e-4)
        j, joint = ckpt["joint_encoder"], ref_sar
        for i in range(DEPTH // 2):
            joint = joint + _reference_attn(j, f"layers.{i}.0", joint, None, bias)
            joint = joint + _reference_attn(j, f"layers.{i}.1", joint, ref_opt, bias)
            joint = joint + _reference_ffn(j, f"layers.{i}.2", joint)
        joint = F.layer_norm(joint, (D,), j["norm_out.weight"], j["norm_out.bias"]).mean(1)
        torch.testing.assert_close(out["joint"], joint, atol=1e-4, rtol=1e-4)
        # single-modality models take only their groups from the same file
        optical = load_encoder("croma", tmp_path / "CROMA_base.pt", modality="optical", **kw)
        torch.testing.assert_close(optical(opt), out["optical"], atol=1e-5, rtol=1e-5)
        # slimming: s = 1 identity, both modes shrink every encoder incl. the cross-attention
        x = torch.cat([sar, opt], 1)
        same = encode(slim(model, 1.0), x)
        torch.testing.assert_close(same, encode(model, x), atol=1e-5, rtol=1e-5)
        half = slim(model, 0.5)
        assert half.joint_blocks[0].cross_attn.q.weight.shape == (HEADS * 4, D)
        assert half.s2_encoder.blocks[0].mlp.fc1.weight.shape == (2 * 64, D)  # both GEGLU halves cut
        heads = slim(model, 0.5, "heads")
        assert heads.s1_encoder.blocks[0].attn.num_heads == 2 and encode(heads, x).shape == (2, 3 * D)
        assert measure_flops(half, x[:1], "blocks") * 2 == measure_flops(model, x[:1], "blocks")


def test_croma_bad_checkpoint(tmp_path):
    ckpt = official_croma_checkpoint()
    del ckpt["joint_encoder"]
    torch.save(ckpt, tmp_path / "no_joint.pt")
    kw = {"embed_dim": D, "depth": DEPTH, "num_heads": HEADS, "img_size": 16}
    with pytest.raises(KeyError, match=r"no_joint\.pt.*joint_blocks"):
        load_encoder("croma", tmp_path / "no_joint.pt", modality="both", **kw)
    ckpt = official_croma_checkpoint()
    ckpt["s2_encoder"]["transformer.extra.weight"] = torch.zeros(1)
    torch.save(ckpt, tmp_path / "extra.pt")
    with pytest.raises(KeyError, match=r"extra\.pt.*transformer\.extra"):
        load_encoder("croma", tmp_path / "extra.pt", modality="optical", **kw)
    model = load_encoder("croma", modality="sar", **kw)
    with pytest.raises(ValueError, match="expects 2 channels"):
        model(torch.randn(1, 12, 16, 16))


def test_dofa_cached_kernel_same_features_fewer_flops(tmp_path):
    state = official_dofa_state(num_patches=4)
    torch.save(state, tmp_path / "dofa.pth")
    live = load_encoder("dofa", tmp_path / "dofa.pth", **DOFA_KW)
    cached = load_encoder("dofa", tmp_path / "dofa.pth", cache_kernel=True, **DOFA_KW)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(cached(x), live(x), atol=1e-5, rtol=1e-5)
        for s, embed in ((1.0, False), (0.5, True)):
            torch.testing.assert_close(slim(cached, s, embed=embed)(x), slim(live, s, embed=embed)(x))
        # the weight generator (128 + 3 + 1 tokens, FFN 2048, fc_weight 16·16·D rows) is not run per forward
        assert measure_flops(cached, x) < 0.2 * measure_flops(live, x)
        assert measure_flops(cached, x, "blocks") == measure_flops(live, x, "blocks")
        # explicit wavelengths still go through the generator
        torch.testing.assert_close(cached(x, [0.49, 0.56, 0.665]), live(x), atol=1e-5, rtol=1e-5)
