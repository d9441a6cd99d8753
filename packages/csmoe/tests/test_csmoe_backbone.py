import re
from pathlib import Path

import numpy as np
import pytest
import torch
from rsim.csmoe.models.backbone import CrossSensorViT, resolve_moe_layers
from rsim.csmoe.models.convert import (
    check_against_manifest,
    load_checkpoint_file,
    load_csmae_weights,
    split_csmae_checkpoint,
)
from rsim.csmoe.models.csmae import CrossSensorMAE, build_backbone
from rsim.csmoe.models.pos_embed import sincos_pos_embed_2d
from safetensors.torch import load_file, save_file

REF = Path(__file__).resolve().parents[3] / ".." / "shared" / "reference" / "csmae"
needs_ref = pytest.mark.skipif(not REF.is_dir(), reason="reference fixtures absent")
TINY = dict(embed_dim=48, num_heads=3, specific_depth=2, shared_depth=1)
ATOL, RTOL = 1e-5, 1e-4

torch.set_num_threads(1)


def tiny(**kw) -> CrossSensorViT:
    torch.manual_seed(0)
    return CrossSensorViT(**TINY, **kw).eval()


@needs_ref
@pytest.mark.parametrize("sub", ["", "variant_randomized_norm_bias"])
def test_reproduces_fixture_a(sub):
    folder = REF / "fixture_a" / sub
    model = tiny()
    model.load_state_dict(load_file(str(folder / "state_dict.safetensors")), strict=True)
    x = torch.from_numpy(np.load(REF / "fixture_a" / "input.npy"))
    with torch.no_grad():
        out = model(x)
        s1, s2 = model.split_sensors(x)
        tokens = {"s1": model.encode_sensor(s1, "s1").tokens, "s2": model.encode_sensor(s2, "s2").tokens}
    for s in ("s1", "s2"):
        ref = torch.from_numpy(np.load(folder / f"output_{s}.npy"))
        torch.testing.assert_close(out[s], ref, atol=ATOL, rtol=RTOL)
        ref_tok = torch.from_numpy(np.load(folder / f"output_tokens_{s}.npy"))
        torch.testing.assert_close(tokens[s], ref_tok, atol=ATOL, rtol=RTOL)


@needs_ref
def test_pos_embed_matches_fixture_table():
    sd = load_file(str(REF / "fixture_a" / "state_dict.safetensors"))
    torch.testing.assert_close(sincos_pos_embed_2d(48, 8)[None], sd["pos_embed"], atol=1e-7, rtol=0)


def test_pos_embed_layout():
    table = sincos_pos_embed_2d(16, 8)
    assert table.shape == (65, 16)
    assert torch.all(table[0] == 0)
    # patch (row 0, column 3): first half encodes the column, sin(3 * w_0) with w_0 = 1
    assert table[1 + 3, 0].item() == pytest.approx(np.sin(3.0), abs=1e-6)
    # patch (row 2, column 0): second half encodes the row
    assert table[1 + 2 * 8, 8].item() == pytest.approx(np.sin(2.0), abs=1e-6)


@needs_ref
@pytest.mark.parametrize(
    ("manifest", "kwargs"),
    [
        ("manifest_vit_base_sesd.json", dict(vit_size="base", variant="sesd")),
        ("manifest_tiny_fixture_a.json", dict(vit_size="tiny", variant="sesd", **TINY)),
    ],
)
def test_state_dict_matches_manifest_on_meta(manifest, kwargs):
    with torch.device("meta"):
        model = build_backbone(**kwargs)
    check_against_manifest(model, REF / manifest)


@needs_ref
def test_manifest_mismatch_is_reported():
    with torch.device("meta"):
        model = build_backbone("base", "secd", moe_layers=["shared"])
    with pytest.raises(ValueError, match="differs from manifest"):
        check_against_manifest(model, REF / "manifest_vit_base_sesd.json")


def test_variants_without_shared_blocks_keep_norm():
    with torch.device("meta"):
        model = build_backbone("tiny", "cesd")
    keys = model.state_dict().keys()
    assert not any(k.startswith("blocks.") for k in keys)
    assert "norm.weight" in keys and "blocks_s1.11.mlp.fc2.bias" in keys


def _lightning_checkpoint(folder: Path) -> dict:
    sd = load_file(str(folder / "state_dict.safetensors"))
    torch.manual_seed(3)
    dec = CrossSensorMAE(vit_size="tiny", decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2, **TINY)
    state = {f"backbone.{k}": v for k, v in sd.items()}
    state.update({k: v for k, v in dec.state_dict().items() if k.startswith("decoder")})
    return {"state_dict": state, "epoch": 3}


@needs_ref
def test_import_original_lightning_checkpoint(tmp_path):
    folder = REF / "fixture_a" / "variant_randomized_norm_bias"
    ckpt = _lightning_checkpoint(folder)
    path = tmp_path / "csmae.ckpt"
    torch.save(ckpt, path)
    state = load_checkpoint_file(path)
    backbone, decoders = split_csmae_checkpoint(state)
    assert len(backbone) == 75 and decoders and all(k.startswith("decoder_s") for k in decoders)
    model = CrossSensorMAE(vit_size="tiny", decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2, **TINY)
    missing = load_csmae_weights(model, state)
    assert missing == []
    torch.testing.assert_close(
        model.decoder_s1_to_s2.decoder_pred.weight, ckpt["state_dict"]["decoder_s1_to_s2.decoder_pred.weight"]
    )
    x = torch.from_numpy(np.load(REF / "fixture_a" / "input.npy"))
    with torch.no_grad():
        out = model.backbone.eval()(x)
    torch.testing.assert_close(out["s1"], torch.from_numpy(np.load(folder / "output_s1.npy")), atol=ATOL, rtol=RTOL)


@needs_ref
def test_upcycle_into_csmoe_keeps_dense_weights():
    sd = load_file(str(REF / "fixture_a" / "state_dict.safetensors"))
    model = tiny(moe_layers=["shared"], num_experts=3, slots_per_expert=2)
    missing = load_csmae_weights(model, sd)
    assert missing == ["blocks.0.mlp.phi", "blocks.0.mlp.scale"]
    moe = model.moe_modules()["blocks.0"]
    for e in range(3):
        torch.testing.assert_close(moe.fc1_weight[e], sd["blocks.0.mlp.fc1.weight"].t())
        torch.testing.assert_close(moe.fc2_bias[e], sd["blocks.0.mlp.fc2.bias"])
    torch.testing.assert_close(model.blocks_s1[1].attn.qkv.weight, sd["blocks_s1.1.attn.qkv.weight"])
    # without upcycling the dense MLP is dropped and the experts stay at their init
    fresh = tiny(moe_layers=["shared"], num_experts=3, slots_per_expert=2)
    before = fresh.moe_modules()["blocks.0"].fc1_weight.clone()
    load_csmae_weights(fresh, sd, upcycle=False)
    torch.testing.assert_close(fresh.moe_modules()["blocks.0"].fc1_weight, before)


def test_converter_errors(tmp_path):
    model = tiny()
    sd = model.state_dict()
    bad_shape = dict(sd)
    bad_shape["norm.weight"] = torch.ones(7)
    with pytest.raises(ValueError, match=re.escape("norm.weight")):
        load_csmae_weights(tiny(), bad_shape)
    missing = {k: v for k, v in sd.items() if k != "fc_norm.bias"}
    with pytest.raises(KeyError, match=re.escape("fc_norm.bias")):
        load_csmae_weights(tiny(), missing)
    extra = dict(sd, **{"blocks.5.attn.qkv.weight": torch.zeros(3)})
    with pytest.raises(KeyError, match=r"blocks\.5"):
        load_csmae_weights(tiny(), extra)
    corrupt = tmp_path / "w.safetensors"
    corrupt.write_bytes(b"\x00\x01garbage")
    with pytest.raises(ValueError, match=re.escape("w.safetensors")):
        load_checkpoint_file(corrupt)
    with pytest.raises(FileNotFoundError, match=re.escape("nope.ckpt")):
        load_checkpoint_file(tmp_path / "nope.ckpt")
    good = tmp_path / "ok.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(good))
    assert load_csmae_weights(tiny(), load_checkpoint_file(good)) == []


def test_masking_strategies():
    model = tiny(masking_strategy="disjoint")
    x = torch.rand(2, 12, 120, 120)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        enc = model.forward_masked(x, 0.5, generator=gen)
    assert enc["s1"].tokens.shape == (2, 33, 48)
    # disjoint: S2 keeps exactly the patches S1 masks
    torch.testing.assert_close(enc["s1"].mask + enc["s2"].mask, torch.ones(2, 64))
    model.masking_strategy = "identical"
    with torch.no_grad():
        enc = model.forward_masked(x, 0.25, generator=gen)
    assert torch.equal(enc["s1"].mask, enc["s2"].mask) and enc["s1"].mask.sum().item() == 2 * 16
    model.masking_strategy = "random"
    with torch.no_grad():
        enc = model.forward_masked(x, 0.5, generator=gen)
    assert not torch.equal(enc["s1"].mask, enc["s2"].mask)


def test_masked_pooling_equals_unmasked_subset():
    """Encoding the kept patches through the shuffle equals encoding them in raster order."""
    model = tiny()
    x = torch.rand(1, 12, 120, 120)
    s1, _ = model.split_sensors(x)
    perm = torch.randperm(64)[None]
    with torch.no_grad():
        a = model.encode_sensor(s1, "s1", 0.0, perm).pooled
        b = model.encode_sensor(s1, "s1").pooled
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_bad_input_shapes():
    model = tiny()
    with pytest.raises(ValueError, match=r"\[B, 12, H, W\]"):
        model(torch.zeros(1, 10, 120, 120))
    with pytest.raises(ValueError, match="120x120"):
        model(torch.zeros(1, 12, 60, 60))
    with pytest.raises(ValueError, match=re.escape("moe_layers entry 'blocks.9'")):
        resolve_moe_layers(["blocks.9"], 2, 1)
    assert resolve_moe_layers(["shared", "specific_second_half"], 4, 2) == [
        "blocks.0",
        "blocks.1",
        "blocks_s1.2",
        "blocks_s1.3",
        "blocks_s2.2",
        "blocks_s2.3",
    ]
