"""Each loader reads random weights saved in the official key layout from a local file."""

import pytest
import torch
from rsim.slimming import slim
from rsim.slimming.models import PrithviEncoder, encode, load_encoder, sincos_pos_embed
from safetensors.torch import save_file

torch.set_num_threads(1)

TINY = {"embed_dim": 32, "depth": 2, "num_heads": 4, "img_size": 32}


def test_ssl4eo_vit_s16_official_layout_and_key_names():
    # the real torchgeo layout: ViT-S/16 at 224 px, 13 bands, no classifier (checked on the meta device: no memory)
    with torch.device("meta"):
        real = load_encoder("ssl4eo")
    keys = set(real.state_dict())
    assert {
        "cls_token",
        "pos_embed",
        "patch_embed.proj.weight",
        "blocks.11.attn.qkv.weight",
        "blocks.11.mlp.fc2.bias",
        "norm.weight",
    } <= keys
    assert real.state_dict()["patch_embed.proj.weight"].shape == (384, 13, 16, 16)
    assert real.state_dict()["pos_embed"].shape == (1, 197, 384)
    assert not any(k.startswith("head") for k in keys if real.state_dict()[k].numel())


def test_ssl4eo_loads_random_weights(tmp_path):
    torch.manual_seed(0)
    src = load_encoder("ssl4eo", **TINY)
    state = {k: torch.randn_like(v) for k, v in src.state_dict().items()}
    state["head.weight"] = torch.randn(1000, 32)  # a stored classifier is ignored
    save_file(state, tmp_path / "ssl4eo.safetensors")
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "ssl4eo.pth")
    x = torch.randn(2, 13, 32, 32)
    outs = []
    for f in ("ssl4eo.safetensors", "ssl4eo.pth"):
        model = load_encoder("ssl4eo", tmp_path / f, **TINY)
        torch.testing.assert_close(model.blocks[1].attn.qkv.weight, state["blocks.1.attn.qkv.weight"])
        outs.append(encode(model, x))
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(encode(slim(model, 1.0), x), outs[0], atol=1e-5, rtol=1e-5)
    assert encode(slim(model, 0.25), x).shape == (2, 32)


def test_missing_key_names_file(tmp_path):
    src = load_encoder("ssl4eo", **TINY)
    state = dict(src.state_dict())
    del state["blocks.1.mlp.fc1.weight"]
    save_file(state, tmp_path / "broken.safetensors")
    with pytest.raises(KeyError, match=r"broken\.safetensors.*blocks\.1\.mlp\.fc1\.weight"):
        load_encoder("ssl4eo", tmp_path / "broken.safetensors", **TINY)
    with pytest.raises(FileNotFoundError, match="absent.safetensors"):
        load_encoder("ssl4eo", tmp_path / "absent.safetensors", **TINY)


def test_prithvi_mae_checkpoint_layout(tmp_path):
    torch.manual_seed(0)
    kw = {"img_size": 32, "patch_size": 16, "num_frames": 3, "in_chans": 6, "embed_dim": 32, "depth": 2, "num_heads": 4}
    src = PrithviEncoder(**kw)
    state = {f"encoder.{k}": torch.randn_like(v) for k, v in src.state_dict().items()}
    assert state["encoder.patch_embed.proj.weight"].shape == (32, 6, 1, 16, 16)
    assert state["encoder.pos_embed"].shape == (1, 1 + 3 * 4, 32)
    state.update({"decoder.decoder_embed.weight": torch.randn(16, 32), "decoder.mask_token": torch.zeros(1, 1, 16)})
    torch.save(state, tmp_path / "Prithvi.pt")
    model = load_encoder("prithvi", tmp_path / "Prithvi.pt", **kw)
    torch.testing.assert_close(model.pos_embed, state["encoder.pos_embed"])
    video = torch.randn(2, 6, 3, 32, 32)
    assert model(video).shape == (2, 32)
    assert model(video[:, :, 0]).shape == (2, 32)  # one frame
    torch.testing.assert_close(slim(model, 1.0)(video), model(video), atol=1e-5, rtol=1e-5)
    assert slim(model, 0.1)(video).shape == (2, 32)


def test_scalemae_gsd_position_embedding(tmp_path):
    torch.manual_seed(0)
    kw = {"model_name": "vit_small_patch16_224", **TINY}
    model = load_encoder("scalemae", res=1.0, **kw)
    coarse = load_encoder("scalemae", res=2.0, **kw)
    assert model.pos_embed.shape == (1, 5, 32) and not model.pos_embed.requires_grad
    assert not torch.allclose(model.pos_embed, coarse.pos_embed)
    torch.testing.assert_close(coarse.pos_embed[0, 1], model.pos_embed[0, 1])  # grid origin (0, 0) is scale-free
    torch.testing.assert_close(coarse.pos_embed[0, 2], sincos_pos_embed(32, 2, res=2.0)[0, 2])
    state = {k: torch.randn_like(v) for k, v in model.state_dict().items()}
    state["mask_token"] = torch.zeros(1, 1, 32)
    torch.save({"model": state}, tmp_path / "scalemae.pth")
    loaded = load_encoder("scalemae", tmp_path / "scalemae.pth", res=1.0, **kw)
    torch.testing.assert_close(loaded.blocks[0].attn.qkv.weight, state["blocks.0.attn.qkv.weight"])
    torch.testing.assert_close(loaded.pos_embed, model.pos_embed)  # GSD-aware table, not the stored one
