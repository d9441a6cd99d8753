"""Model: pure region functions, forced-[SEG] generation with KV-cache injection, modality and temporal routing,
teacher-forced overfit, stage freezing and the Lightning step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from rsim.terrascope.build import build_model, format_prompt, tokens_of
from rsim.terrascope.models.region import (
    frame_from_text,
    mask_to_grid,
    region_token_indices,
    select_modality,
    select_tokens,
    uniform_sample,
)
from rsim.terrascope.models.terrascope import ForcedTokens, LogitBias, TerraScopeModel, TerraScopeSample

torch.set_num_threads(1)
VISION = {
    "model_name": "vit_tiny_patch16_224",
    "img_size": 32,
    "patch_size": 4,
    "embed_dim": 32,
    "depth": 1,
    "num_heads": 2,
}
LM = {
    "model_type": "qwen2",
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
}
OPTIONS = {"max_region_tokens": 4, "prompt_dim": 32, "decoder_hidden": 16}


def _model(**options: object) -> tuple[TerraScopeModel, object]:
    torch.manual_seed(0)
    model, tok = build_model(vision=VISION, lm=LM, model_options={**OPTIONS, **options})
    return model.eval(), tok


def test_mask_to_grid_selection_and_sampling() -> None:
    mask = torch.zeros(8, 8)
    mask[:, :5] = 1  # cells of a 4×4 grid: columns 0,1 full, column 2 half covered
    cov = mask_to_grid(mask, (4, 4))
    assert cov[0].tolist() == [1.0, 1.0, 0.5, 0.0]
    assert select_tokens(cov).tolist() == [0, 1, 4, 5, 8, 9, 12, 13]  # 0.5 is not > 50 %
    assert mask_to_grid(mask, (4, 4), "nearest")[0].tolist() == [1.0, 1.0, 1.0, 0.0]
    full = torch.arange(64)
    picked = uniform_sample(full, (8, 8), 4)  # 2×2 lattice over the 8×8 extent → one token per quadrant
    assert picked.tolist() == [9, 13, 41, 45]  # lattice centres at 2 and 6 fall between cells: lowest index wins
    assert len(uniform_sample(full, (8, 8), 128)) == 64
    assert region_token_indices(torch.zeros(8, 8), (4, 4)).tolist() == [10]  # empty → centre token
    assert region_token_indices(mask, (4, 4), max_tokens=3).numel() == 3


def test_select_modality_variants() -> None:
    q = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    opt = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    sar = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    feats, use_sar = select_modality(opt, sar, q, softmax_dim="modality")
    assert use_sar.tolist() == [False, True] and torch.equal(feats, torch.stack([opt[0], sar[1]]))
    _, use_sar = select_modality(opt, sar, q, softmax_dim="tokens")
    assert use_sar.tolist() == [False, True]
    _, use_sar = select_modality(opt, sar, q, softmax_dim="text")  # β ≡ 1/L: ties keep the optical feature
    assert use_sar.tolist() == [False, False]
    assert frame_from_text("Image: 1 ... Image: 3 then", 2) == 1
    assert frame_from_text("no frame", 3) == 0


def _prompt_ids(model: TerraScopeModel, tok: object, n_frames: int = 1, sar: bool = False) -> torch.Tensor:
    text = format_prompt(
        "<image>\nWhere is the forest?", n_frames=n_frames, tokens_per_image=model.tokens_per_image, with_sar=sar
    )
    return torch.tensor(tokens_of(tok, text))


def _replay_logits(
    model: TerraScopeModel,
    ids: torch.Tensor,
    images: torch.Tensor,
    sar: torch.Tensor | None,
    generated: list[int],
    regions: list[torch.Tensor],
) -> torch.Tensor:
    """Logits of a single full forward over prompt + generated tokens with the given regions after each [SEG]."""
    _, toks = model.encode_images(images if sar is None else torch.cat([images, sar]))
    parts = [model.embed(ids, toks)]
    emb = model.lm.get_input_embeddings()
    k = 0
    for t in generated:
        parts.append(emb(torch.tensor([t])))
        if t == model.tokens.seg:
            parts.append(regions[k])
            k += 1
    return model.lm(inputs_embeds=torch.cat(parts)[None]).logits[0, -1]


def test_forced_seg_injects_regions_into_kv_cache() -> None:
    model, tok = _model()
    seg = model.tokens.seg
    ids = _prompt_ids(model, tok)
    images = torch.randn(1, 3, 32, 32)
    forced = [*tokens_of(tok, "<think>a"), seg, *tokens_of(tok, " b"), seg, *tokens_of(tok, " c")]
    res = model.generate(
        ids,
        images,
        max_new_tokens=len(forced),
        logits_processor=ForcedTokens(forced),
        decode=tok.decode,
        mask_size=(20, 20),
    )
    assert res.token_ids == forced and len(res.masks) == 2 and res.frames == [0, 0]
    assert res.masks[0].shape == (20, 20) and all(1 <= len(r) <= 4 for r in res.regions)
    _, toks = model.encode_images(images)
    injected = [toks[0][r] for r in res.regions]
    with torch.no_grad():
        replay = _replay_logits(model, ids, images, None, forced, injected)
        assert torch.allclose(replay, res.last_logits, atol=1e-4)
        without = _replay_logits(model, ids, images, None, [t for t in forced if t != seg], [])
    assert not torch.allclose(without, res.last_logits, atol=1e-3)  # the injected positions matter
    # a logit bias alone makes [SEG] the argmax at every step: one mask per step
    res = model.generate(ids, images, max_new_tokens=3, logits_processor=LogitBias({seg: 1e4}))
    assert res.token_ids == [seg] * 3 and len(res.masks) == 3


def test_modality_selection_and_temporal_routing_in_generation() -> None:
    model, tok = _model(fusion="text_guided", fusion_softmax_dim="modality", max_region_tokens=16)
    seg = model.tokens.seg
    torch.manual_seed(1)
    images, sar = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    ids = _prompt_ids(model, tok, n_frames=2, sar=True)
    forced = [*tokens_of(tok, "Image: 2"), seg, *tokens_of(tok, " Image: 1"), seg, *tokens_of(tok, "x")]
    res = model.generate(
        ids, images, sar=sar, max_new_tokens=len(forced), logits_processor=ForcedTokens(forced), decode=tok.decode
    )
    assert res.frames == [1, 0]
    _, toks = model.encode_images(torch.cat([images, sar]))
    injected = []
    for r, frame, use in zip(res.regions, res.frames, res.use_sar, strict=True):
        opt_f, sar_f = toks[frame][r], toks[2 + frame][r]
        injected.append(torch.where(use[:, None], sar_f, opt_f))
    with torch.no_grad():
        assert torch.allclose(_replay_logits(model, ids, images, sar, forced, injected), res.last_logits, atol=1e-4)
    # the SAR choice is exactly the text-guided rule applied to the text embeddings decoded so far
    text_ids = torch.cat([ids[ids != model.tokens.img_context], torch.tensor(forced[: forced.index(seg) + 1])])
    q = model.lm.get_input_embeddings()(text_ids)
    _, expect = select_modality(toks[1][res.regions[0]], toks[3][res.regions[0]], q, softmax_dim="modality")
    assert torch.equal(expect, res.use_sar[0])
    none_model, _ = _model(fusion="none")
    r2 = none_model.generate(ids, images, sar=sar, max_new_tokens=2, logits_processor=ForcedTokens([seg, seg]))
    assert not any(u.any() for u in r2.use_sar)


def _sample(model: TerraScopeModel, tok: object, sar: bool = False) -> TerraScopeSample:
    prompt = tokens_of(
        tok, format_prompt("<image>\nWhere?", n_frames=1, tokens_per_image=model.tokens_per_image, with_sar=sar)
    )
    resp = [*tokens_of(tok, "<think>f [SEG] g [SEG]</think><answer>A</answer>"), model.tokens.eos]
    m1, m2 = torch.zeros(32, 32), torch.zeros(32, 32)
    m1[:, :16], m2[8:24, 8:24] = 1, 1
    return TerraScopeSample(
        torch.tensor(prompt + resp),
        torch.tensor([-100] * len(prompt) + resp),
        torch.randn(1, 3, 32, 32),
        [m1, m2],
        [0, 0],
        torch.randn(1, 3, 32, 32) if sar else None,
    )


def test_teacher_forcing_overfit_on_generated_records(tmp_path: Path) -> None:
    from rsim.terrascope.data.datamodule import TerraCotDataModule, TerraCotDataset, collate_raw
    from rsim.terrascope.data.testing import write_cot_fixture
    from rsim.terrascope.tasks import TerraScopeTask

    fx = write_cot_fixture(tmp_path, n_images=1, size=32, kind="refseg", with_sar=True)  # short "Sure, [SEG]."
    ds = TerraCotDataset(fx.json_path)
    dm = TerraCotDataModule(train_json=str(fx.json_path), img_size=32)
    batch = dm.on_after_batch_transfer(collate_raw([ds[0], ds[1]]), 0)
    torch.manual_seed(0)
    task = TerraScopeTask(vision=VISION, lm=LM, stage=2, model_options=OPTIONS)
    samples = task.samples(batch)
    assert samples[0].sar is not None and len(samples[1].seg_masks) == 1
    params = [p for p in task.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=3e-3)
    first = None
    for _ in range(30):
        out = task.model(samples)
        first = first or {k: out[k].item() for k in ("lm_loss", "seg_loss")}
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert out["mask_logits"].shape == (2, 32, 32)
    assert out["lm_loss"].item() < 0.7 * first["lm_loss"]
    assert out["seg_loss"].item() < 0.6 * first["seg_loss"]
    model, tok = _model()
    bad = _sample(model, tok)
    bad.seg_masks = bad.seg_masks[:1]
    with pytest.raises(ValueError, match="2 \\[SEG\\] tokens but 1 masks"):
        model([bad])


def test_lm_loss_ignores_injected_region_positions() -> None:
    model, tok = _model(max_region_tokens=4)
    s = _sample(model, tok)
    n_response = int((s.labels != -100).sum())
    with torch.no_grad():
        out = model([s])
        assert int(out["lm_targets"]) == n_response  # 2 × 4 injected positions carry no target
        a = out["lm_loss"]
        s.images = s.images + 5.0  # changes only visual tokens (prompt positions and injected regions)
        b = model([s])["lm_loss"]
    assert torch.isfinite(a) and not torch.isclose(a, b)  # the regions condition the text after [SEG]


def test_stage_freezing_lora_and_gpu_check(tmp_path: Path) -> None:
    from rsim.terrascope.gpu_check import run
    from rsim.terrascope.tasks import TerraScopeTask

    lora = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    s1 = TerraScopeTask(vision=VISION, lm=LM, stage=1, lora=lora, model_options=OPTIONS)
    trainable = {n.split(".")[1] for n, p in s1.named_parameters() if p.requires_grad}
    assert trainable == {"seg_head", "mask_decoder"}
    s2 = TerraScopeTask(vision=VISION, lm=LM, stage=2, lora=lora, model_options=OPTIONS)
    names = [n for n, p in s2.named_parameters() if p.requires_grad]
    assert any("lora_" in n for n in names) and any(n.startswith("model.projector") for n in names)
    assert not any(n.startswith("model.vision") for n in names)
    assert not any(n.startswith("model.lm") and "lora_" not in n for n in names)
    loss = run(tmp_path, accelerator="cpu", precision="32", small=True)
    assert loss == loss and loss > 0


def test_vision_encoder_local_weights(tmp_path: Path) -> None:
    from rsim.terrascope.models.vision import VisionEncoder
    from safetensors.torch import save_file

    torch.manual_seed(3)
    a = VisionEncoder(**VISION)
    save_file({k: v.contiguous() for k, v in a.vit.state_dict().items()}, str(tmp_path / "vit.safetensors"))
    b = VisionEncoder(**VISION, weights=tmp_path / "vit.safetensors")
    x = torch.randn(1, 3, 32, 32)
    assert b(x).shape == (1, 32, 8, 8) and torch.allclose(a.eval()(x), b.eval()(x))
    with pytest.raises(FileNotFoundError, match="missing"):
        VisionEncoder(**VISION, weights=tmp_path / "absent.safetensors")
