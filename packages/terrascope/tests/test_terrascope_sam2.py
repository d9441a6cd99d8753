"""SAM-2 mask decoder through transformers' ``Sam2Model``: a tiny random SAM-2 saved in the Hugging Face layout,
loaded from the local folder, forced-[SEG] generation, a teacher-forced step with gradients, freezing, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from rsim.terrascope.build import build_model, format_prompt, tokens_of
from rsim.terrascope.models.mask_decoder import Sam2MaskDecoder, load_sam2
from rsim.terrascope.models.terrascope import ForcedTokens, TerraScopeModel, TerraScopeSample

torch.set_num_threads(1)
VISION = {"model_name": "vit_tiny_patch16_224", "img_size": 32, "patch_size": 4, "embed_dim": 32, "depth": 1}
VISION["num_heads"] = 2
LM = {
    "model_type": "qwen2",
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
}
SAM_WIDTH = 32  # SAM-2 prompt / mask-decoder width of the tiny model (256 in the real ones)


def _tiny_sam2_config() -> object:
    from transformers import Sam2Config

    return Sam2Config(
        vision_config={
            "backbone_config": {
                "model_type": "sam2_hiera_det_model",
                "hidden_size": 8,
                "image_size": [64, 64],
                "blocks_per_stage": [1, 1, 2, 1],
                "embed_dim_per_stage": [8, 16, 32, 64],
                "num_attention_heads_per_stage": [1, 1, 1, 1],
                "window_size_per_stage": [4, 4, 4, 2],
                "global_attention_blocks": [3],
                "window_positional_embedding_background_size": [2, 2],
            },
            "backbone_channel_list": [64, 32, 16, 8],
            "backbone_feature_sizes": [[16, 16], [8, 8], [4, 4]],
            "fpn_hidden_size": SAM_WIDTH,
        },
        prompt_encoder_config={"hidden_size": SAM_WIDTH, "image_size": 64, "patch_size": 16, "mask_input_channels": 4},
        mask_decoder_config={
            "hidden_size": SAM_WIDTH,
            "mlp_dim": 64,
            "num_attention_heads": 2,
            "iou_head_hidden_dim": 32,
        },
    )


@pytest.fixture(scope="module")
def sam2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import Sam2Model

    torch.manual_seed(0)
    sam = Sam2Model(_tiny_sam2_config())
    with torch.no_grad():
        sam.no_memory_embedding.normal_()  # zero-initialised; non-zero so the test sees it is added
    folder = tmp_path_factory.mktemp("sam2") / "sam2.1-hiera-tiny-random"
    sam.save_pretrained(folder)
    return folder


def _options(sam2_dir: Path, **extra: object) -> dict[str, object]:
    return {
        "max_region_tokens": 4,
        "prompt_dim": SAM_WIDTH,
        "mask_decoder": "sam2",
        "sam2_checkpoint": str(sam2_dir),
        **extra,
    }


def _model(sam2_dir: Path, **extra: object) -> tuple[TerraScopeModel, object]:
    torch.manual_seed(0)
    model, tok = build_model(vision=VISION, lm=LM, model_options=_options(sam2_dir, **extra))
    return model.eval(), tok


def test_sam2_features_match_transformers(sam2_dir: Path) -> None:
    model, _ = _model(sam2_dir)
    decoder = model.mask_decoder
    assert isinstance(decoder, Sam2MaskDecoder) and decoder.input_size == (64, 64)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours = decoder.image_features(images, torch.empty(0))
        up = torch.nn.functional.interpolate(images, size=(64, 64), mode="bilinear", align_corners=False)
        want = decoder.sam.get_image_embeddings(up)  # [high_res_0, high_res_1, image_embeddings]
    assert [tuple(x.shape) for x in ours] == [(2, 32, 4, 4), (2, 4, 16, 16), (2, 8, 8, 8)]
    for a, b in zip(ours, (want[2], want[0], want[1]), strict=True):
        torch.testing.assert_close(a, b)


def test_sam2_forced_seg_generation(sam2_dir: Path) -> None:
    model, tok = _model(sam2_dir)
    seg = model.tokens.seg
    text = format_prompt("<image>\nWhere is the forest?", n_frames=2, tokens_per_image=model.tokens_per_image)
    ids = torch.tensor(tokens_of(tok, text))
    images = torch.randn(2, 3, 32, 32)
    forced = [*tokens_of(tok, "Image: 2 a"), seg, *tokens_of(tok, " b"), seg, *tokens_of(tok, " c")]
    res = model.generate(
        ids,
        images,
        max_new_tokens=len(forced),
        logits_processor=ForcedTokens(forced),
        decode=lambda t: tok.decode(t),  # type: ignore[attr-defined]
        mask_size=(48, 48),
    )
    assert res.token_ids == forced and len(res.masks) == 2 and res.frames == [1, 1]
    for m, idx in zip(res.masks, res.regions, strict=True):
        assert m.shape == (48, 48) and float(m.min()) >= 0 and float(m.max()) <= 1
        assert 1 <= len(idx) <= 4


def _sample(model: TerraScopeModel, tok: object) -> TerraScopeSample:
    prompt = tokens_of(tok, format_prompt("<image>\nWhere?", n_frames=1, tokens_per_image=model.tokens_per_image))
    resp = [*tokens_of(tok, "<think>f [SEG] g [SEG]</think><answer>A</answer>"), model.tokens.eos]
    m1, m2 = torch.zeros(32, 32), torch.zeros(32, 32)
    m1[:, :16], m2[8:24, 8:24] = 1, 1
    return TerraScopeSample(
        torch.tensor(prompt + resp), torch.tensor([-100] * len(prompt) + resp), torch.randn(1, 3, 32, 32), [m1, m2]
    )


@pytest.mark.parametrize("frozen", [True, False])
def test_sam2_teacher_forced_step_trains_decoder_and_seg_head(sam2_dir: Path, frozen: bool) -> None:
    from rsim.terrascope.tasks import TerraScopeTask

    torch.manual_seed(0)
    task = TerraScopeTask(vision=VISION, lm=LM, stage=1, model_options=_options(sam2_dir, freeze_sam2_encoder=frozen))
    model = task.model.train()  # as Lightning does; in eval SAM-2 may fall back to a multimask token
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {n.split(".")[0] for n in trainable} == {"seg_head", "mask_decoder"}
    assert any(n.startswith("mask_decoder.sam.mask_decoder.") for n in trainable)
    assert not any(n.startswith("mask_decoder.sam.prompt_encoder.") for n in trainable)
    assert any(n.startswith("mask_decoder.sam.vision_encoder.") for n in trainable) is not frozen
    out = model([_sample(model, task.tokenizer)])
    assert out["mask_logits"].shape == (2, 32, 32) and torch.isfinite(out["seg_loss"])
    out["loss"].backward()
    sam = model.mask_decoder.sam  # type: ignore[union-attr]
    decoder = sam.mask_decoder  # the single-mask token path: transformer, upscaling, hypernetwork 0, conv_s0/s1
    reached = (model.seg_head, decoder.transformer, decoder.upscale_conv1, decoder.output_hypernetworks_mlps[0])
    for module in (*reached, decoder.conv_s0, decoder.conv_s1):
        for name, p in module.named_parameters():
            assert p.grad is not None and float(p.grad.abs().sum()) > 0, f"{type(module).__name__}.{name}"
    encoder_grads = [p.grad for p in sam.vision_encoder.parameters()]
    if frozen:
        assert all(g is None for g in encoder_grads)
    else:
        assert any(g is not None and float(g.abs().sum()) > 0 for g in encoder_grads)


def test_sam2_prompt_options_change_the_mask(sam2_dir: Path) -> None:
    a, tok = _model(sam2_dir)
    b, _ = _model(sam2_dir, sam2_empty_point_prompt=False)
    gated, _ = _model(sam2_dir, sam2_object_score_gate=True)
    s = _sample(a, tok)
    with torch.no_grad():
        la, lb = (m([s])["mask_logits"] for m in (a, b))
        assert la.shape == lb.shape == (2, 32, 32) and not torch.allclose(la, lb)
        head = gated.mask_decoder.sam.mask_decoder.pred_obj_score_head  # type: ignore[union-attr]
        last = [m for m in head.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.bias.fill_(10.0)  # object present → gating changes nothing
        torch.testing.assert_close(gated([s])["mask_logits"], la)
        last.bias.fill_(-1e4)  # no object → SAM-2's "no object" logit everywhere
        assert torch.equal(gated([s])["mask_logits"], torch.full_like(la, -1024.0))


def test_sam2_errors(sam2_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="needs sam2_checkpoint"):
        load_sam2(None)
    with pytest.raises(FileNotFoundError, match="nowhere does not exist.*terrascope convert-sam2"):
        load_sam2(tmp_path / "nowhere")
    pt = tmp_path / "sam2.1_hiera_large.pt"
    pt.write_bytes(b"\0")
    with pytest.raises(FileNotFoundError, match="sam2.1_hiera_large.pt is a file.*Hugging Face SAM-2 layout"):
        load_sam2(pt)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        load_sam2(empty)
    (empty / "config.json").write_text((sam2_dir / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="no \\*.safetensors weights"):
        load_sam2(empty)
    (empty / "model.safetensors").write_bytes((sam2_dir / "model.safetensors").read_bytes())
    (empty / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    with pytest.raises(ValueError, match="model_type 'qwen2' is not SAM-2"):
        load_sam2(empty)
    with pytest.raises(ValueError, match=f"prompt_dim 16 differs from the SAM-2 prompt width {SAM_WIDTH}"):
        build_model(vision=VISION, lm=LM, model_options=_options(sam2_dir, prompt_dim=16))
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        build_model(vision=VISION, lm=LM, model_options=_options(tmp_path / "nowhere"))


def test_sam2_video_checkpoint_loads_into_the_image_model(sam2_dir: Path, tmp_path: Path) -> None:
    """The Hugging Face SAM-2.1 checkpoints are ``sam2_video``; their image part loads, memory modules are ignored."""
    from transformers import Sam2Model, Sam2VideoConfig, Sam2VideoModel

    image = Sam2Model.from_pretrained(sam2_dir, local_files_only=True)
    sizes = {"memory_attention_hidden_size": 32, "memory_encoder_hidden_size": 32}
    sizes |= {"memory_encoder_output_channels": 16, "mask_downsampler_embed_dim": 32, "memory_fuser_embed_dim": 32}
    config = Sam2VideoConfig(
        vision_config=image.config.vision_config.to_dict(),
        prompt_encoder_config=image.config.prompt_encoder_config.to_dict(),
        mask_decoder_config=image.config.mask_decoder_config.to_dict(),
        image_size=64,
        **sizes,
    )
    video = Sam2VideoModel(config)
    video.load_state_dict(image.state_dict(), strict=False)
    video.save_pretrained(tmp_path / "video")
    loaded = load_sam2(tmp_path / "video")
    assert type(loaded).__name__ == "Sam2Model"
    for name, value in image.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value, msg=name)


def _to_official(hf: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The facebookresearch/sam2 names of a ``Sam2Model`` state dict (written out rule by rule for the test)."""
    import re

    out: dict[str, torch.Tensor] = {}
    for key, value in hf.items():
        if key == "shared_image_embedding.positional_embedding":
            continue
        if key == "prompt_encoder.point_embed.weight":
            for i, row in enumerate(value):
                out[f"sam_prompt_encoder.point_embeddings.{i}.weight"] = row[None].clone()
            continue
        k = key.replace("vision_encoder.backbone.", "image_encoder.trunk.").replace(
            "vision_encoder.neck.", "image_encoder.neck."
        )
        k = k.replace("prompt_encoder.", "sam_prompt_encoder.").replace("mask_decoder.", "sam_mask_decoder.")
        k = k.replace("no_memory_embedding", "no_mem_embed").replace("patch_embed.projection", "patch_embed.proj")
        k = re.sub(r"neck\.convs\.(\d+)\.", r"neck.convs.\1.conv.", k)
        k = k.replace("layer_norm", "norm").replace("o_proj", "out_proj")
        k = k.replace("shared_embedding.positional_embedding", "pe_layer.positional_encoding_gaussian_matrix")
        for i, name in ((0, "conv1"), (1, "norm1"), (3, "conv2"), (4, "norm2"), (6, "conv3")):
            k = k.replace(f"mask_embed.{name}.", f"mask_downscaling.{i}.")
        for i, name in ((0, "upscale_conv1"), (1, "upscale_norm"), (3, "upscale_conv2")):
            k = k.replace(f".{name}.", f".output_upscaling.{i}.")
        if ".mlp." in k:
            k = k.replace(".mlp.proj_in.", ".mlp.layers.0.").replace(".mlp.proj_out.", ".mlp.layers.1.")
        elif any(h in k for h in ("iou_prediction_head", "pred_obj_score_head", "hypernetworks")):
            k = (
                k.replace(".layers.0.", ".layers.1.")
                .replace(".proj_in.", ".layers.0.")
                .replace(".proj_out.", ".layers.2.")
            )
        out[k] = value.clone()
    return out


def test_convert_official_sam2_checkpoint(sam2_dir: Path, tmp_path: Path) -> None:
    from rsim.terrascope.cli import main
    from rsim.terrascope.models.convert_sam2 import _rename, convert_sam2_checkpoint, sam2_config
    from transformers import Sam2Model

    expected = {  # official name → transformers name
        "image_encoder.trunk.blocks.3.mlp.layers.1.weight": "vision_encoder.backbone.blocks.3.mlp.proj_out.weight",
        "image_encoder.trunk.blocks.0.norm1.bias": "vision_encoder.backbone.blocks.0.layer_norm1.bias",
        "image_encoder.neck.convs.2.conv.weight": "vision_encoder.neck.convs.2.weight",
        "sam_mask_decoder.transformer.layers.1.cross_attn_token_to_image.out_proj.bias": (
            "mask_decoder.transformer.layers.1.cross_attn_token_to_image.o_proj.bias"
        ),
        "sam_mask_decoder.transformer.norm_final_attn.weight": "mask_decoder.transformer.layer_norm_final_attn.weight",
        "sam_mask_decoder.output_hypernetworks_mlps.2.layers.1.bias": (
            "mask_decoder.output_hypernetworks_mlps.2.layers.0.bias"
        ),
        "sam_mask_decoder.iou_prediction_head.layers.2.weight": "mask_decoder.iou_prediction_head.proj_out.weight",
        "sam_prompt_encoder.mask_downscaling.4.weight": "prompt_encoder.mask_embed.layer_norm2.weight",
    }
    assert {k: _rename(k) for k in expected} == expected
    image = Sam2Model.from_pretrained(sam2_dir, local_files_only=True)
    with torch.no_grad():  # one matrix in SAM-2 (pe_layer), two copies in transformers
        image.shared_image_embedding.positional_embedding.copy_(
            image.prompt_encoder.shared_embedding.positional_embedding
        )
    official = _to_official(image.state_dict())
    official |= {"memory_encoder.fuser.layers.0.gamma": torch.ones(3), "maskmem_tpos_enc": torch.zeros(7, 1, 1, 8)}
    pt = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": official}, pt)
    out = convert_sam2_checkpoint(pt, tmp_path / "hf", config=image.config)
    loaded = load_sam2(out)
    for name, value in image.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value, msg=name)
    with pytest.raises(ValueError, match="do not fit the SAM-2 architecture"):
        main(["convert-sam2", str(pt), str(tmp_path / "hf2")])  # the file name says tiny: real Hiera-T sizes
    assert not (tmp_path / "hf2").exists()  # the file name says tiny: real Hiera-T sizes
    with pytest.raises(FileNotFoundError, match="does not exist"):
        convert_sam2_checkpoint(tmp_path / "none.pt", tmp_path / "hf3")
    with pytest.raises(ValueError, match="unknown SAM-2 variant 'huge'"):
        sam2_config("huge")
    assert sam2_config("large").vision_config.backbone_channel_list == [1152, 576, 288, 144]
