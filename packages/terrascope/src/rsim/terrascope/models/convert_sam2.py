"""Offline converter: official SAM-2 / SAM-2.1 ``.pt`` checkpoints → a Hugging Face ``Sam2Model`` folder.

Only the image model is kept (Hiera trunk + FPN neck, prompt encoder, mask decoder, no-memory embedding); the video
memory modules are dropped. The key renaming follows the naming of transformers' ``Sam2Model``; the architecture
of each variant (tiny, small, base_plus, large) is the one of the official configs.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["SAM2_VARIANTS", "convert_sam2_checkpoint", "sam2_config", "sam2_state_dict_to_hf"]

# Hiera trunk of each official variant (the prompt encoder and mask decoder are the same for all).
SAM2_VARIANTS: dict[str, dict[str, Any]] = {
    "tiny": {"hidden_size": 96, "blocks_per_stage": [1, 2, 7, 2], "global_attention_blocks": [5, 7, 9]},
    "small": {"hidden_size": 96, "blocks_per_stage": [1, 2, 11, 2], "global_attention_blocks": [7, 10, 13]},
    "base_plus": {
        "hidden_size": 112,
        "embed_dim_per_stage": [112, 224, 448, 896],
        "num_attention_heads_per_stage": [2, 4, 8, 16],
        "blocks_per_stage": [2, 3, 16, 3],
        "global_attention_blocks": [12, 16, 20],
        "window_positional_embedding_background_size": [14, 14],
    },
    "large": {
        "hidden_size": 144,
        "embed_dim_per_stage": [144, 288, 576, 1152],
        "num_attention_heads_per_stage": [2, 4, 8, 16],
        "blocks_per_stage": [2, 6, 36, 4],
        "global_attention_blocks": [23, 33, 43],
        "window_positional_embedding_background_size": [7, 7],
        "window_size_per_stage": [8, 4, 16, 8],
    },
}

_KEEP = ("image_encoder.", "sam_prompt_encoder.", "sam_mask_decoder.", "no_mem_embed")
_PREFIXES = (
    ("image_encoder.trunk.", "vision_encoder.backbone."),
    ("image_encoder.neck.", "vision_encoder.neck."),
    ("sam_prompt_encoder.", "prompt_encoder."),
    ("sam_mask_decoder.", "mask_decoder."),
)
_SUBSTITUTIONS = (
    (r"^no_mem_embed$", "no_memory_embedding"),
    (r"\.patch_embed\.proj\.", ".patch_embed.projection."),
    (r"\.neck\.convs\.(\d+)\.conv\.", r".neck.convs.\1."),
    (r"\.norm(\d|_final_attn)", r".layer_norm\1"),
    (r"\.out_proj\.", ".o_proj."),
    (r"\.pe_layer\.positional_encoding_gaussian_matrix$", ".shared_embedding.positional_embedding"),
    (r"\.mask_downscaling\.0\.", ".mask_embed.conv1."),
    (r"\.mask_downscaling\.1\.", ".mask_embed.layer_norm1."),
    (r"\.mask_downscaling\.3\.", ".mask_embed.conv2."),
    (r"\.mask_downscaling\.4\.", ".mask_embed.layer_norm2."),
    (r"\.mask_downscaling\.6\.", ".mask_embed.conv3."),
    (r"\.output_upscaling\.0\.", ".upscale_conv1."),
    (r"\.output_upscaling\.1\.", ".upscale_layer_norm."),
    (r"\.output_upscaling\.3\.", ".upscale_conv2."),
)
# Two-layer MLPs (Hiera blocks, two-way transformer) and three-layer MLPs (heads, hypernetworks).
_MLP2 = re.compile(r"^(.*\.(?:blocks|layers)\.\d+\.mlp)\.layers\.([01])\.(weight|bias)$")
_MLP3 = re.compile(
    r"^(.*\.(?:iou_prediction_head|pred_obj_score_head|output_hypernetworks_mlps\.\d+))\.layers\.([012])\.(weight|bias)$"
)


def _rename(key: str) -> str:
    for old, new in _PREFIXES:
        if key.startswith(old):
            key = new + key[len(old) :]
    for pattern, repl in _SUBSTITUTIONS:
        key = re.sub(pattern, repl, key)
    if m := _MLP2.match(key):
        return f"{m[1]}.{('proj_in', 'proj_out')[int(m[2])]}.{m[3]}"
    if m := _MLP3.match(key):
        return f"{m[1]}.{('proj_in', 'layers.0', 'proj_out')[int(m[2])]}.{m[3]}"
    return key


def sam2_state_dict_to_hf(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Official SAM-2 keys → ``transformers.Sam2Model`` keys (image model only; memory modules are dropped).

    Raises:
        KeyError: The prompt encoder's point embeddings or positional matrix are missing.
    """
    out: dict[str, Tensor] = {}
    points: dict[int, Tensor] = {}
    for key, value in state.items():
        if not key.startswith(_KEEP):
            continue
        if m := re.fullmatch(r"sam_prompt_encoder\.point_embeddings\.(\d+)\.weight", key):
            points[int(m[1])] = value
            continue
        out[_rename(key)] = value
    if not points:
        raise KeyError("sam_prompt_encoder.point_embeddings.*.weight missing: not an official SAM-2 state dict")
    out["prompt_encoder.point_embed.weight"] = torch.cat([points[i] for i in sorted(points)], dim=0)
    pe = "prompt_encoder.shared_embedding.positional_embedding"
    if pe not in out:
        raise KeyError("sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix missing")
    out["shared_image_embedding.positional_embedding"] = out[pe]
    return out


def sam2_config(variant: str) -> Any:
    """``transformers.Sam2Config`` of an official variant (``tiny``, ``small``, ``base_plus``, ``large``).

    Raises:
        ValueError: Unknown variant.
    """
    from transformers import Sam2Config

    if variant not in SAM2_VARIANTS:
        raise ValueError(f"unknown SAM-2 variant {variant!r}; expected one of {sorted(SAM2_VARIANTS)}")
    trunk = {"model_type": "sam2_hiera_det_model", **SAM2_VARIANTS[variant]}
    dims = trunk.get("embed_dim_per_stage", [96, 192, 384, 768])
    return Sam2Config(vision_config={"backbone_config": trunk, "backbone_channel_list": list(reversed(dims))})


def _variant_of(path: Path) -> str:
    stem = path.stem.lower()
    for name in sorted(SAM2_VARIANTS, key=len, reverse=True):
        if f"hiera_{name}" in stem or stem.endswith(name):
            return name
    raise ValueError(
        f"{path}: cannot tell the SAM-2 variant from the file name; pass variant= one of {sorted(SAM2_VARIANTS)}"
    )


def convert_sam2_checkpoint(
    checkpoint: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    variant: str | None = None,
    config: Any = None,
) -> Path:
    """Convert an official ``sam2(.1)_hiera_*.pt`` into a folder that ``mask_decoder: sam2`` loads.

    Args:
        checkpoint: Official checkpoint (``{"model": state_dict}`` or a bare state dict).
        out_dir: Output folder (written atomically: a temporary sibling folder renamed at the end).
        variant: ``tiny``/``small``/``base_plus``/``large``; default: from the file name.
        config: A ``Sam2Config`` to use instead of ``variant`` (e.g. a non-standard model).

    Returns:
        The output folder (config.json + model.safetensors).

    Raises:
        FileNotFoundError: ``checkpoint`` does not exist.
        ValueError: Unknown variant, or the tensors do not fit the architecture (missing/unexpected/shape).
    """
    from transformers import Sam2Model

    src = Path(checkpoint)
    if not src.is_file():
        raise FileNotFoundError(f"SAM-2 checkpoint {src} does not exist (expected an official sam2*_hiera_*.pt)")
    raw = torch.load(src, map_location="cpu", weights_only=True)
    state = raw.get("model", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{src}: expected a dict with a 'model' state dict, got {type(raw).__name__}")
    cfg = config if config is not None else sam2_config(variant or _variant_of(src))
    model = Sam2Model(cfg)
    try:
        missing, unexpected = model.load_state_dict(sam2_state_dict_to_hf(state), strict=False)
    except (RuntimeError, KeyError) as err:
        raise ValueError(f"{src}: tensors do not fit the SAM-2 architecture: {err}") from err
    if missing or unexpected:
        raise ValueError(f"{src}: missing keys {sorted(missing)[:8]}, unexpected keys {sorted(unexpected)[:8]}")
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out
