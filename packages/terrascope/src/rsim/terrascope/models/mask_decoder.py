"""Mask decoders driven by the ``[SEG]`` prompt embedding: the light built-in decoder and the SAM-2 adapter.

Both decoders share one interface: ``image_features(images, vit_features)`` gives per-frame tensors (leading dim
T) computed once per image, and ``decode(features, prompt, size)`` turns one frame's features (leading dim 1) and
(1, P, prompt_dim) prompt embeddings into (1, P, H, W) mask logits.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LightMaskDecoder", "Sam2MaskDecoder", "SegPromptHead", "build_mask_decoder", "load_sam2"]


class SegPromptHead(nn.Module):
    """``text_hidden_fcs``: Linear(d, d) → ReLU → Linear(d, prompt_dim) applied to the ``[SEG]`` hidden state."""

    def __init__(self, hidden_dim: int, prompt_dim: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, prompt_dim))

    def forward(self, hidden: Tensor) -> Tensor:
        """(..., d) → (..., prompt_dim)."""
        return self.net(hidden)


class LightMaskDecoder(nn.Module):
    """Prompt-conditioned decoder on the ViT patch grid: conv features, prompt modulation, dot product, upsampling.

    Args:
        in_channels: Channels of the vision features.
        prompt_dim: Width of the prompt embedding.
        hidden: Width of the decoder features.
    """

    def __init__(self, in_channels: int, prompt_dim: int = 256, hidden: int = 64) -> None:
        super().__init__()
        self.feat = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1), nn.GELU(), nn.Conv2d(hidden, hidden, 3, padding=1), nn.GELU()
        )
        self.film = nn.Linear(prompt_dim, 2 * hidden)
        self.query = nn.Linear(prompt_dim, hidden)
        self.refine = nn.Conv2d(hidden + 1, 1, 3, padding=1)
        self.hidden = hidden

    def forward(self, features: Tensor, prompt: Tensor, size: tuple[int, int]) -> Tensor:
        """Mask logits.

        Args:
            features: (B, C, h, w) vision features.
            prompt: (B, P, prompt_dim) one prompt per mask.
            size: Output (H, W).

        Returns:
            (B, P, H, W) logits.
        """
        f = self.feat(features)  # (B, h', C', w)
        b, p = prompt.shape[:2]
        gamma, beta = self.film(prompt).chunk(2, dim=-1)  # (B, P, C')
        mod = f[:, None] * (1 + gamma[..., None, None]) + beta[..., None, None]  # (B, P, C', h, w)
        dot = torch.einsum("bpchw,bpc->bphw", mod, self.query(prompt)) / math.sqrt(self.hidden)
        x = torch.cat([mod.flatten(0, 1), dot.flatten(0, 1)[:, None]], dim=1)
        low = self.refine(x).view(b, p, *f.shape[-2:]) + dot
        return F.interpolate(low, size=size, mode="bilinear", align_corners=False)

    def image_features(self, images: Tensor, vit_features: Tensor) -> tuple[Tensor, ...]:
        """Per-frame decoder inputs: the ViT features themselves, ``((T, C, h, w),)``."""
        return (vit_features,)

    def decode(self, features: tuple[Tensor, ...], prompt: Tensor, size: tuple[int, int]) -> Tensor:
        """(1, P, H, W) logits from one frame's ``image_features`` and (1, P, prompt_dim) prompts."""
        (vit,) = features
        return self(vit.to(prompt.dtype), prompt, size)


class Sam2MaskDecoder(nn.Module):
    """SAM-2 (transformers ``Sam2Model``) prompted by the ``[SEG]`` embedding, as in LISA / Sa2VA / TerraScope.

    The image is resized to SAM-2's input size and goes through its Hiera + FPN encoder (image embeddings plus the
    two high-resolution levels, projected by the mask decoder's ``conv_s0``/``conv_s1``; the "no memory" embedding
    is added to the lowest-resolution level as for a single image). The ``[SEG]`` prompt is the sparse prompt
    embedding (after the empty-point tokens SAM-2 uses without clicks when ``empty_point_prompt``), the dense
    prompt is SAM-2's no-mask embedding, and the mask decoder predicts one mask (``multimask_output=False``) at 1/4
    of the input size, upsampled bilinearly to the requested size.

    Args:
        sam: A loaded ``transformers.Sam2Model``.
        freeze_image_encoder: Keep the Hiera/FPN encoder (and the no-memory embedding) frozen and run it without
            gradients; the prompt encoder's constant embeddings are always frozen, the mask decoder trains.
        empty_point_prompt: Put SAM-2's two "not a point" tokens (an empty click and its padding) before the
            ``[SEG]`` embedding, as the released Sa2VA-based code does; ``False`` = the ``[SEG]`` embedding only.
        object_score_gate: Replace the logits by -1024 where SAM-2's object score is ≤ 0 (SAM-2's video
            behaviour); off by default because it cuts the mask gradient.
    """

    def __init__(
        self,
        sam: Any,
        *,
        freeze_image_encoder: bool = True,
        empty_point_prompt: bool = True,
        object_score_gate: bool = False,
    ) -> None:
        super().__init__()
        self.sam = sam
        self.freeze_image_encoder = freeze_image_encoder
        self.empty_point_prompt = empty_point_prompt
        self.object_score_gate = object_score_gate
        cfg = sam.config
        self.prompt_dim = int(cfg.prompt_encoder_config.hidden_size)
        size = cfg.vision_config.backbone_config.image_size
        self.input_size: tuple[int, int] = (
            (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
        )
        self.requires_grad_(True)

    def requires_grad_(self, requires_grad: bool = True) -> Sam2MaskDecoder:
        """Set ``requires_grad`` on the trainable parts; frozen parts (see class doc) stay frozen."""
        super().requires_grad_(requires_grad)
        self.sam.prompt_encoder.requires_grad_(False)
        self.sam.shared_image_embedding.requires_grad_(False)
        if self.freeze_image_encoder:
            self.sam.vision_encoder.requires_grad_(False)
            self.sam.no_memory_embedding.requires_grad_(False)
        return self

    def _dtype(self) -> torch.dtype:
        return self.sam.mask_decoder.iou_token.weight.dtype

    def image_features(self, images: Tensor, vit_features: Tensor) -> tuple[Tensor, ...]:
        """SAM-2 features of (T, 3, S, S) normalised frames (ImageNet mean/std, as SAM-2 expects).

        Returns:
            ``(image_embeddings (T, C, h, w), high_res_0 (T, C/8, 4h, 4w), high_res_1 (T, C/4, 2h, 2w))``.
        """
        x = images.to(self._dtype())
        if tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_image_encoder):
            out = self.sam.vision_encoder(x, return_dict=True)
            levels = list(out.fpn_hidden_states)
            embeddings = levels[-1] + self.sam.no_memory_embedding.view(1, -1, 1, 1)
        decoder = self.sam.mask_decoder
        return embeddings, decoder.conv_s0(levels[0]), decoder.conv_s1(levels[1])

    def decode(self, features: tuple[Tensor, ...], prompt: Tensor, size: tuple[int, int]) -> Tensor:
        """(B, P, H, W) logits from ``image_features`` of B frames and (B, P, prompt_dim) ``[SEG]`` prompts."""
        embeddings, high0, high1 = features
        dtype = self._dtype()
        sam = self.sam
        b, p = prompt.shape[:2]
        prompt = prompt.to(dtype)
        if self.empty_point_prompt:
            points = prompt.new_zeros(b, p, 1, 2)
            labels = -torch.ones(b, p, 1, dtype=torch.int32, device=prompt.device)
            sparse, dense = sam.prompt_encoder(points, labels, None, None)
            sparse = torch.cat([sparse.to(dtype), prompt[:, :, None]], dim=2)
        else:
            _, dense = sam.prompt_encoder(None, None, None, None)
            sparse = prompt[:, :, None]
        dense = dense.to(dtype).expand(b, -1, -1, -1)
        positions = sam.get_image_wide_positional_embeddings().to(dtype).repeat(b, 1, 1, 1)
        masks, _, _, object_score = sam.mask_decoder(
            image_embeddings=embeddings.to(dtype),
            image_positional_embeddings=positions,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
            high_resolution_features=[high0.to(dtype), high1.to(dtype)],
        )
        logits = masks[:, :, 0]  # (B, P, 4h, 4w)
        if self.object_score_gate:
            logits = torch.where(object_score[..., None] > 0, logits, torch.full_like(logits, -1024.0))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


SAM2_MODEL_TYPES = ("sam2", "sam2_video")


def load_sam2(path: str | os.PathLike[str] | None) -> Any:
    """``transformers.Sam2Model`` from a local folder in the Hugging Face layout (config.json + safetensors).

    Raises:
        FileNotFoundError: ``path`` is missing, not a folder, or lacks ``config.json`` / safetensors weights.
        ValueError: ``config.json`` is not a SAM-2 config.
    """
    hint = (
        "expected a local folder in the Hugging Face SAM-2 layout (config.json + *.safetensors); convert an "
        "official sam2(.1)_hiera_*.pt file with `terrascope convert-sam2 <file.pt> <folder>` (README)"
    )
    if path is None:
        raise FileNotFoundError(f"mask_decoder 'sam2' needs sam2_checkpoint: {hint}")
    folder = Path(path)
    if not folder.is_dir():
        what = "is a file" if folder.is_file() else "does not exist"
        raise FileNotFoundError(f"sam2_checkpoint {folder} {what}: {hint}")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"sam2_checkpoint {folder}: config.json is missing; {hint}")
    if not any(folder.glob("*.safetensors")):
        raise FileNotFoundError(f"sam2_checkpoint {folder}: no *.safetensors weights; {hint}")
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except (json.JSONDecodeError, AttributeError) as err:
        raise ValueError(f"{config_file} is not a valid JSON object: {err}") from err
    if model_type not in SAM2_MODEL_TYPES:
        raise ValueError(f"{config_file}: model_type {model_type!r} is not SAM-2 (expected one of {SAM2_MODEL_TYPES})")
    from transformers import Sam2Model

    return Sam2Model.from_pretrained(str(folder), local_files_only=True)


def build_mask_decoder(
    kind: str,
    *,
    in_channels: int,
    prompt_dim: int = 256,
    hidden: int = 64,
    sam2_checkpoint: str | os.PathLike[str] | None = None,
    freeze_sam2_encoder: bool = True,
    sam2_empty_point_prompt: bool = True,
    sam2_object_score_gate: bool = False,
) -> LightMaskDecoder | Sam2MaskDecoder:
    """The configured decoder: ``light`` (default) or ``sam2`` (a local Hugging Face SAM-2 folder).

    Raises:
        FileNotFoundError: ``sam2`` without a usable local folder (see :func:`load_sam2`).
        ValueError: Unknown ``kind``, not a SAM-2 config, or ``prompt_dim`` differs from SAM-2's prompt width.
    """
    if kind == "light":
        return LightMaskDecoder(in_channels, prompt_dim, hidden)
    if kind == "sam2":
        decoder = Sam2MaskDecoder(
            load_sam2(sam2_checkpoint),
            freeze_image_encoder=freeze_sam2_encoder,
            empty_point_prompt=sam2_empty_point_prompt,
            object_score_gate=sam2_object_score_gate,
        )
        if decoder.prompt_dim != prompt_dim:
            raise ValueError(
                f"prompt_dim {prompt_dim} differs from the SAM-2 prompt width {decoder.prompt_dim} of "
                f"{sam2_checkpoint}; set model_options.prompt_dim: {decoder.prompt_dim}"
            )
        return decoder
    raise ValueError(f"unknown mask_decoder {kind!r}; expected 'light' or 'sam2'")
