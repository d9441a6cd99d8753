"""InternViT-300M loader: official key layouts → timm ViT, equal to transformers' InternVLVisionModel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from rsim.core.errors import DataFormatError, MissingKeyError
from rsim.core.models import (
    convert_internvit_state_dict,
    create_internvit,
    create_internvl_projector,
    internvl_pixel_shuffle,
    read_checkpoint,
)
from rsim.core.testing.internvit import internvit_state_dict, internvl_projector_state_dict, write_internvit_checkpoint
from safetensors.torch import save_file

transformers = pytest.importorskip("transformers", reason="the reference implementation is transformers' InternVL")

DIM, DEPTH, HEADS, MLP, PATCH, SIZE, LLM = 32, 2, 4, 128, 14, 56, 24


def official_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under the standalone InternViT-300M-448px key names (tiny sizes)."""
    return internvit_state_dict(dim=DIM, depth=DEPTH, mlp=MLP, patch=PATCH, image_size=SIZE, seed=seed)


def projector_state(seed: int = 1) -> dict[str, torch.Tensor]:
    return internvl_projector_state_dict(vision_dim=DIM, llm_dim=LLM, seed=seed)


def hf_vision(state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """transformers' InternVLVisionModel with the same weights, renamed the way its conversion script does."""
    cfg = transformers.InternVLVisionConfig(
        hidden_size=DIM, num_hidden_layers=DEPTH, num_attention_heads=HEADS, intermediate_size=MLP,
        attention_bias=True, image_size=SIZE, patch_size=PATCH, layer_norm_eps=1e-6, use_mean_pooling=True,
    )  # fmt: skip
    cfg._attn_implementation = "eager"
    model = transformers.InternVLVisionModel(cfg).eval()
    hf: dict[str, torch.Tensor] = {
        "embeddings.cls_token": state["embeddings.class_embedding"],
        "embeddings.position_embeddings": state["embeddings.position_embedding"],
        "embeddings.patch_embeddings.projection.weight": state["embeddings.patch_embedding.weight"],
        "embeddings.patch_embeddings.projection.bias": state["embeddings.patch_embedding.bias"],
    }
    names = {"attn.proj": "attention.projection_layer", "norm1": "layernorm_before", "norm2": "layernorm_after"}
    names |= {"mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
    for i in range(DEPTH):
        src, dst = f"encoder.layers.{i}.", f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            q, k, v = state[f"{src}attn.qkv.{kind}"].chunk(3, dim=0)
            hf |= {f"{dst}attention.q_proj.{kind}": q, f"{dst}attention.k_proj.{kind}": k}
            hf[f"{dst}attention.v_proj.{kind}"] = v
            for old, new in names.items():
                hf[f"{dst}{new}.{kind}"] = state[f"{src}{old}.{kind}"]
        hf[f"{dst}lambda_1"] = state[f"{src}ls1"]
        hf[f"{dst}lambda_2"] = state[f"{src}ls2"]
    model.load_state_dict(hf, strict=True)
    return model


def images(size: int, n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(3))


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_standalone_safetensors_matches_transformers(tmp_path: Path) -> None:
    state = official_state()
    path = tmp_path / "InternViT-300M-448px.safetensors"
    save_file(state, str(path))
    ours = create_internvit(path, image_size=SIZE, num_heads=HEADS).eval()
    assert (ours.embed_dim, len(ours.blocks)) == (DIM, DEPTH)  # inferred from the file
    ref = hf_vision(state)
    x = images(SIZE)
    with torch.no_grad():
        got = ours.forward_features(x)
        want = ref(pixel_values=x).last_hidden_state
    assert got.shape == (2, 1 + (SIZE // PATCH) ** 2, DIM)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_chat_layout_torch_file_projector_and_other_size(tmp_path: Path) -> None:
    vision = official_state()
    path = write_internvit_checkpoint(tmp_path / "internvl_chat.pt", layout="chat", dim=DIM, depth=DEPTH, llm_dim=LLM)
    ref = hf_vision(vision)
    # 84 px: 6×6 patches, position embeddings resized from the 4×4 grid like InternViT/transformers at run time
    ours = create_internvit(path, image_size=84, num_heads=HEADS).eval()
    x = images(84)
    with torch.no_grad():
        got = ours.forward_features(x)
        hidden = ref(pixel_values=x).last_hidden_state
    torch.testing.assert_close(got, hidden, rtol=1e-5, atol=1e-5)

    proj = create_internvl_projector(path)
    assert proj is not None
    cfg = transformers.InternVLConfig(
        vision_config={"hidden_size": DIM}, text_config={"model_type": "qwen2", "hidden_size": LLM}
    )
    ref_proj = transformers.models.internvl.modeling_internvl.InternVLMultiModalProjector(cfg).eval()
    ref_proj.load_state_dict(
        {
            n: projector_state()[o]
            for n, o in [
                ("layer_norm.weight", "mlp1.0.weight"),
                ("layer_norm.bias", "mlp1.0.bias"),
                ("linear_1.weight", "mlp1.1.weight"),
                ("linear_1.bias", "mlp1.1.bias"),
                ("linear_2.weight", "mlp1.3.weight"),
                ("linear_2.bias", "mlp1.3.bias"),
            ]
        }
    )
    with torch.no_grad():
        grid = hidden[:, 1:].reshape(2, 6, 6, DIM)
        shuffled = transformers.InternVLModel.pixel_shuffle(None, grid, scale_factor=0.5)
        want = ref_proj(shuffled.reshape(2, -1, 4 * DIM))
        got_tokens = proj(got[:, 1:])
    assert got_tokens.shape == (2, 9, LLM)
    torch.testing.assert_close(got_tokens, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(internvl_pixel_shuffle(grid), shuffled)
    # the standalone encoder file has no projector
    assert create_internvl_projector(official_state()) is None


def test_sharded_index_reads_only_vision_and_projector(tmp_path: Path) -> None:
    vision = {f"vision_model.{k}": v for k, v in official_state().items()}
    save_file(vision | projector_state(), str(tmp_path / "model-00001-of-00002.safetensors"))
    (tmp_path / "model-00002-of-00002.safetensors").write_bytes(b"not read: only language_model keys")
    weight_map = dict.fromkeys(vision, "model-00001-of-00002.safetensors")
    weight_map |= dict.fromkeys(projector_state(), "model-00001-of-00002.safetensors")
    weight_map["language_model.lm_head.weight"] = "model-00002-of-00002.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    model = create_internvit(tmp_path, image_size=SIZE, num_heads=HEADS)
    assert len(model.blocks) == DEPTH
    assert create_internvl_projector(tmp_path) is not None


def test_missing_and_truncated_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        create_internvit(tmp_path / "nope.safetensors", image_size=SIZE)
    path = tmp_path / "cut.safetensors"
    save_file(official_state(), str(path))
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(DataFormatError, match=r"cut\.safetensors"):
        create_internvit(path, image_size=SIZE, num_heads=HEADS)
    pt = tmp_path / "cut.pt"
    torch.save(official_state(), pt)
    pt.write_bytes(pt.read_bytes()[:1000])
    with pytest.raises(DataFormatError, match=r"cut\.pt"):
        read_checkpoint(pt)
    wrapped = tmp_path / "lightning.ckpt"  # a wrapper dict with non-tensor entries is unwrapped
    torch.save({"state_dict": official_state(), "epoch": 3}, wrapped)
    assert len(create_internvit(wrapped, image_size=SIZE, num_heads=HEADS).blocks) == DEPTH
    torch.save({"weights": [1, 2]}, wrapped)
    with pytest.raises(DataFormatError, match=r"lightning\.ckpt: expected tensors"):
        read_checkpoint(wrapped)


def test_missing_unexpected_and_mismatched_keys(tmp_path: Path) -> None:
    state = official_state()
    del state["encoder.layers.1.ls2"]
    path = tmp_path / "partial.safetensors"
    save_file(state, str(path))
    with pytest.raises(MissingKeyError, match=r"partial\.safetensors.*encoder\.layers\.1\.ls2"):
        create_internvit(path, image_size=SIZE, num_heads=HEADS)

    extra = official_state() | {"encoder.layers.0.attn.q_norm.weight": torch.ones(DIM)}
    with pytest.raises(DataFormatError, match=r"unexpected InternViT keys.*q_norm"):
        convert_internvit_state_dict(extra, source="six_b.safetensors")
    with pytest.raises(DataFormatError, match="no InternViT keys"):
        convert_internvit_state_dict({"conv1.weight": torch.zeros(1)})
    # architecture forced to 300M width while the file is tiny: shape error naming the file
    good = tmp_path / "tiny.safetensors"
    save_file(official_state(), str(good))
    with pytest.raises(DataFormatError, match=r"tiny\.safetensors.*shapes"):
        create_internvit(good, image_size=SIZE, embed_dim=64, num_heads=HEADS)
    with pytest.raises(MissingKeyError, match=r"mlp1\.3\.bias"):
        bad_proj = projector_state()
        del bad_proj["mlp1.3.bias"]
        create_internvl_projector(bad_proj)
