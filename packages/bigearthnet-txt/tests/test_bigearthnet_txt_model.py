import math
from pathlib import Path

import pytest
import torch
from rsim.bigearthnet_txt.evaluate import parse_box, parse_letter, parse_yes_no
from rsim.bigearthnet_txt.gpu_check import char_tokenizer, run, tiny_lm_config
from rsim.bigearthnet_txt.tasks import RSInternVLTask, lr_lambda

SAMPLES = [
    ("Is there any Pastures in the image?", "yes"),
    ("Is there any Coniferous forest in the image?", "no"),
    ("In which season was this image acquired? a) winter, b) summer, c) spring, d) autumn", "b"),
    ("Give the bounding box of <ref>the region of Arable land</ref>.", "[0.0 0.0, 0.7 1.0]"),
]


def test_overfit_and_parsers_read_the_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    tok = char_tokenizer([t for pair in SAMPLES for t in pair], tmp_path / "tok")
    task = RSInternVLTask(
        str(tok), lm_config=tiny_lm_config(128, 64), encoder="vit_small_patch16_224",
        encoder_kwargs={"patch_size": 40, "embed_dim": 16, "depth": 1, "num_heads": 2},
        lora_dropout=0.0, lr=1e-2,
    )  # fmt: skip
    trainable = {n.split(".")[0] for n, p in task.model.named_parameters() if p.requires_grad}
    assert trainable == {"s1_proj", "s2_proj", "lm"}
    assert all("lora_" in n for n, p in task.model.lm.named_parameters() if p.requires_grad)
    assert not any(p.requires_grad for p in task.model.s1_encoder.parameters())
    batch = {"image": torch.randn(4, 12, 120, 120), "input": [q for q, _ in SAMPLES], "output": [a for _, a in SAMPLES]}
    enc = task.encode(batch["input"], batch["output"])
    n_answer = sum(len(a) + 1 for _, a in SAMPLES)  # characters + eos
    assert int((enc["labels"] != -100).sum()) == n_answer
    opt = torch.optim.AdamW([p for p in task.parameters() if p.requires_grad], lr=1e-2)
    task.train()
    first = None
    for _ in range(100):
        loss = task.loss(batch)
        first = first if first is not None else float(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if float(loss) < 0.02:
            break
    assert float(loss) < 0.1 * first
    task.eval()
    answers = task.answer(batch["image"], batch["input"])
    assert parse_yes_no(answers[0]) == "yes" and parse_yes_no(answers[1]) == "no"
    assert parse_letter(answers[2]) == "b"
    assert parse_box(answers[3]) == (0.0, 0.0, 0.7, 1.0)


def test_schedule() -> None:
    hp = {"lr": 1e-4, "warmup_start_lr": 1e-6, "warmup_fraction": 0.01}
    f = lr_lambda(1000, hp)
    assert f(0) == pytest.approx(0.01) and f(10) == pytest.approx(1.0)
    assert f(505) == pytest.approx(0.5) and f(1000) == pytest.approx(0.0, abs=1e-12)
    assert math.isclose(f(5), 0.01 + 0.99 * 0.5)


def test_gpu_check_runs_on_cpu(tmp_path: Path) -> None:
    loss = run(tmp_path, accelerator="cpu", precision="32-true", small=True)
    assert math.isfinite(loss) and loss > 0


def test_rgb_encoder_and_encoder_checkpoints(tmp_path: Path) -> None:
    from rsim.core.errors import DataFormatError
    from safetensors.torch import save_file

    torch.manual_seed(0)
    torch.set_num_threads(1)
    tok = char_tokenizer([t for pair in SAMPLES for t in pair], tmp_path / "tok")
    vit = {"patch_size": 40, "embed_dim": 16, "depth": 1, "num_heads": 2}
    kw = {"lm_config": tiny_lm_config(128, 64), "encoder": "vit_small_patch16_224", "encoder_kwargs": vit}
    task = RSInternVLTask(
        str(tok), rgb_encoder="vit_small_patch16_224", rgb_encoder_kwargs={**vit, "patch_size": 20},
        rgb_img_size=80, **kw,
    )  # fmt: skip
    model = task.model
    assert model.rgb_encoder is not None and not any(p.requires_grad for p in model.rgb_encoder.parameters())
    s1, s2 = torch.randn(2, 2, 120, 120), torch.arange(10.0).view(1, 10, 1, 1).expand(2, 10, 120, 120)
    rgb = model.rgb(s2)
    assert rgb.shape == (2, 3, 80, 80) and rgb[:, :, 0, 0].tolist() == [[2.0, 1.0, 0.0]] * 2  # B04, B03, B02
    tokens = model.visual_tokens(s1, s2)
    assert tokens.shape == (2, 10 + 10 + 17, 64)  # 9 patches + cls per sensor, 16 RGB patches + cls
    batch = {"image": torch.randn(2, 12, 120, 120), "input": [SAMPLES[0][0]] * 2, "output": [SAMPLES[0][1]] * 2}
    task.train()
    task.loss(batch).backward()
    assert model.rgb_proj is not None and model.rgb_proj.weight.grad is not None
    assert not model.rgb_encoder.training
    plain = RSInternVLTask(str(tok), **kw)
    assert plain.model.visual_tokens(s1, s2).shape[1] == 20
    # frozen encoder weights from local checkpoints (prefix stripped, strict)
    source = {f"model.{k}": v.clone() + 1 for k, v in model.s1_encoder.state_dict().items()}
    save_file(source, str(tmp_path / "s1.safetensors"))
    torch.save({"state_dict": source}, tmp_path / "s1.ckpt")
    for file in ("s1.safetensors", "s1.ckpt"):
        weights = {"s1": str(tmp_path / file)}
        loaded = RSInternVLTask(str(tok), encoder_weights=weights, encoder_weights_prefix="model.", **kw)
        for k, v in loaded.model.s1_encoder.state_dict().items():
            assert torch.equal(v, source[f"model.{k}"])
    with pytest.raises(DataFormatError, match="s1.safetensors.*missing keys"):
        RSInternVLTask(str(tok), encoder_weights={"s1": str(tmp_path / "s1.safetensors")}, **kw)
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        RSInternVLTask(str(tok), encoder_weights={"s2": str(tmp_path / "absent.pt")}, **kw)
    with pytest.raises(ValueError, match="expected s1, s2 or rgb"):
        RSInternVLTask(str(tok), encoder_weights={"rgb": str(tmp_path / "s1.ckpt")}, **kw)
    with pytest.raises(ValueError, match="rgb_bands"):
        RSInternVLTask(str(tok), rgb_bands=[2, 1, 12], **kw)
