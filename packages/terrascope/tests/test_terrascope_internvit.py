"""`encoder: internvit`: official InternViT/InternVL checkpoints feed the vision encoder and the projector."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from rsim.core.models import create_internvit, create_internvl_projector
from rsim.core.testing.internvit import write_internvit_checkpoint
from rsim.terrascope.build import build_model
from rsim.terrascope.models.vision import VisionEncoder

torch.set_num_threads(1)
VISION = {"encoder": "internvit", "img_size": 56, "num_heads": 4}
LM = {
    "model_type": "qwen2",
    "hidden_size": 24,
    "intermediate_size": 48,
    "num_hidden_layers": 1,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
}
OPTIONS = {"max_region_tokens": 4, "prompt_dim": 16, "decoder_hidden": 16}


def test_internvit_encoder_grid_matches_core(tmp_path: Path) -> None:
    ckpt = write_internvit_checkpoint(tmp_path / "InternViT-300M-448px.safetensors", dim=32, depth=2)
    enc = VisionEncoder(**VISION, weights=ckpt).eval()
    x = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(0))
    ref = create_internvit(ckpt, image_size=56, num_heads=4).eval()
    with torch.no_grad():
        got = enc(x)
        want = ref.forward_features(x)[:, 1:].transpose(1, 2).reshape(2, 32, 4, 4)
    assert enc.grid == (4, 4) and enc.embed_dim == 32
    torch.testing.assert_close(got, want)
    assert enc.official_projector_state() is None  # standalone encoder file: no mlp1


def test_chat_checkpoint_initialises_projector(tmp_path: Path) -> None:
    ckpt = write_internvit_checkpoint(tmp_path / "internvl3.safetensors", layout="chat", dim=32, depth=2, llm_dim=24)
    model, _ = build_model(vision={**VISION, "weights": str(ckpt)}, lm=LM, model_options=OPTIONS)
    model.eval()
    official = create_internvl_projector(ckpt)
    assert official is not None
    x = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        feats, tokens = model.encode_images(x)
        want = official(model.vision.vit.forward_features(x)[:, 1:])
    # 4×4 patches → 2×2 tokens after the 0.5 pixel shuffle
    assert feats.shape == (2, 32, 4, 4) and tokens.shape == (2, 4, 24)
    torch.testing.assert_close(tokens, want)  # same channel order as InternVL's pixel shuffle + mlp1

    small_lm = {**LM, "hidden_size": 16, "intermediate_size": 32}
    with pytest.raises(ValueError, match=r"internvl3\.safetensors: mlp1 projector"):
        build_model(vision={**VISION, "weights": str(ckpt)}, lm=small_lm, model_options=OPTIONS)
    with pytest.raises(FileNotFoundError, match="absent"):
        VisionEncoder(**VISION, weights=tmp_path / "absent")


def test_paper_configs_use_internvit() -> None:
    import inspect

    import yaml

    configs = Path(__file__).resolve().parents[1] / "configs"
    params = set(inspect.signature(VisionEncoder.__init__).parameters)
    for name in ("paper_stage1.yaml", "paper_stage2.yaml"):
        vision = yaml.safe_load((configs / name).read_text())["model"]["init_args"]["vision"]
        assert vision["encoder"] == "internvit" and vision["img_size"] == 448, name
        assert str(vision["weights"]).startswith("/models/"), name  # placeholder documented in the README
        assert set(vision) <= params, name
