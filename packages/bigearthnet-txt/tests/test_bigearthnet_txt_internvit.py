"""`rgb_encoder: internvit`: the RGB tokens come from InternViT-300M loaded from an official checkpoint."""

from pathlib import Path

import pytest
import torch
from rsim.bigearthnet_txt.gpu_check import char_tokenizer, tiny_lm_config
from rsim.bigearthnet_txt.tasks import RSInternVLTask
from rsim.core.models import create_internvit
from rsim.core.testing.internvit import write_internvit_checkpoint

TEXTS = ["Is there any Pastures in the image?", "yes", "no"]
VIT = {"patch_size": 40, "embed_dim": 16, "depth": 1, "num_heads": 2}


def test_internvit_rgb_encoder_from_chat_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    tok = char_tokenizer(TEXTS, tmp_path / "tok")
    ckpt = write_internvit_checkpoint(tmp_path / "InternVL3-1B.safetensors", layout="chat", dim=32, depth=2)
    kw = {"lm_config": tiny_lm_config(128, 64), "encoder": "vit_small_patch16_224", "encoder_kwargs": VIT}
    task = RSInternVLTask(
        str(tok), rgb_encoder="internvit", rgb_encoder_kwargs={"num_heads": 4}, rgb_img_size=56,
        encoder_weights={"rgb": str(ckpt)}, **kw,
    )  # fmt: skip
    model = task.model
    assert model.rgb_encoder is not None and not any(p.requires_grad for p in model.rgb_encoder.parameters())
    s1, s2 = torch.randn(2, 2, 120, 120), torch.randn(2, 10, 120, 120)
    ref = create_internvit(ckpt, image_size=56, num_heads=4).eval()
    with torch.no_grad():
        want = ref.forward_features(model.rgb(s2))
        got = model.rgb_encoder.forward_features(model.rgb(s2))
    torch.testing.assert_close(got, want)  # the official weights, not a random init
    assert model.visual_tokens(s1, s2).shape == (2, 10 + 10 + 17, 64)  # 4×4 InternViT patches + cls
    # default tile size of InternViT is 448 px
    default = RSInternVLTask(str(tok), rgb_encoder="internvit", rgb_encoder_kwargs={"depth": 1, **VIT}, **kw)
    assert default.model.rgb_img_size == 448
    with pytest.raises(FileNotFoundError, match="absent.safetensors"):
        RSInternVLTask(
            str(tok), rgb_encoder="internvit", encoder_weights={"rgb": str(tmp_path / "absent.safetensors")}, **kw
        )
