"""TerraScope: ViT → pixel shuffle → MLP projector → causal LM, with a ``[SEG]`` mask branch and region injection.

Teacher-forced training (``forward``) places region features taken from the ground-truth masks after each
``[SEG]``; greedy generation (``generate``) predicts a mask at each emitted ``[SEG]``, selects the visual tokens it
covers and appends their embeddings to the KV cache as ``<REGION>`` positions before decoding on.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from rsim.terrascope.models.mask_decoder import LightMaskDecoder, Sam2MaskDecoder, SegPromptHead, build_mask_decoder
from rsim.terrascope.models.region import (
    FusionSoftmaxDim,
    GridResize,
    frame_from_text,
    gather_tokens,
    region_token_indices,
    select_modality,
)
from rsim.terrascope.models.vision import MLPProjector, VisionEncoder, pixel_shuffle
from torch import Tensor, nn

Fusion = Literal["none", "text_guided"]
LogitsProcessor = Callable[[Tensor, Tensor], Tensor]

__all__ = [
    "ForcedTokens",
    "GenerationResult",
    "LogitBias",
    "SpecialTokenIds",
    "TerraScopeModel",
    "TerraScopeSample",
    "dice_loss",
    "mask_loss",
]


@dataclass(frozen=True)
class SpecialTokenIds:
    """Ids of the special tokens the model relies on."""

    seg: int
    region: int
    img_context: int
    eos: int
    pad: int


@dataclass
class TerraScopeSample:
    """One teacher-forcing sample (tensors on the model's device).

    Attributes:
        input_ids: (L,) prompt + response with ``img_context`` placeholders for every image token.
        labels: (L,) targets, -100 on the prompt.
        images: (T, 3, S, S) normalised optical frames.
        seg_masks: One (S, S) float ground-truth mask per ``[SEG]`` in ``input_ids``.
        seg_frames: Frame index of each ``[SEG]`` (``"Image: t"`` routing), default 0.
        sar: (T, 3, S, S) SAR frames at the same positions, or ``None``.
    """

    input_ids: Tensor
    labels: Tensor
    images: Tensor
    seg_masks: list[Tensor]
    seg_frames: list[int] = field(default_factory=list)
    sar: Tensor | None = None


@dataclass
class GenerationResult:
    """Output of :meth:`TerraScopeModel.generate`."""

    token_ids: list[int]
    masks: list[Tensor]
    regions: list[Tensor]
    frames: list[int]
    use_sar: list[Tensor]
    last_logits: Tensor | None = None  # LM logits after the last input position (before any processor)


class LogitBias:
    """Add a constant bias to chosen token logits (``{token_id: bias}``)."""

    def __init__(self, bias: dict[int, float]) -> None:
        self.bias = bias

    def __call__(self, generated: Tensor, logits: Tensor) -> Tensor:  # noqa: D102
        out = logits.clone()
        for tok, b in self.bias.items():
            out[tok] += b
        return out


class ForcedTokens:
    """Force the first ``len(sequence)`` generated tokens (a logit bias of +inf on the scheduled token)."""

    def __init__(self, sequence: Sequence[int]) -> None:
        self.sequence = list(sequence)

    def __call__(self, generated: Tensor, logits: Tensor) -> Tensor:  # noqa: D102
        step = len(generated)
        if step >= len(self.sequence):
            return logits
        out = torch.full_like(logits, float("-inf"))
        out[self.sequence[step]] = 0.0
        return out


def dice_loss(logits: Tensor, target: Tensor, eps: float = 1.0) -> Tensor:
    """Plain Dice loss of (P, H, W) logits against {0, 1} targets, averaged over masks."""
    p = logits.sigmoid().flatten(1)
    t = target.flatten(1)
    return (1 - (2 * (p * t).sum(1) + eps) / (p.sum(1) + t.sum(1) + eps)).mean()


def mask_loss(logits: Tensor, target: Tensor, *, ce_weight: float = 2.0, dice_weight: float = 0.5) -> Tensor:
    """``ce_weight · sigmoid-CE + dice_weight · Dice`` (released config: 2.0 and 0.5)."""
    ce = F.binary_cross_entropy_with_logits(logits, target)
    return ce_weight * ce + dice_weight * dice_loss(logits, target)


class TerraScopeModel(nn.Module):
    """The pixel-grounded VLM.

    Args:
        vision: Vision encoder (shared by optical and SAR).
        lm: Causal LM (transformers, optionally wrapped by peft) whose vocabulary includes the special tokens.
        tokens: Special-token ids.
        pixel_shuffle_scale: 0.5 merges 2×2 patch tokens.
        prompt_dim: Width of the ``[SEG]`` prompt embedding.
        mask_decoder: ``light`` or ``sam2``.
        decoder_hidden: Width of the light decoder.
        sam2_checkpoint: Local folder of a Hugging Face SAM-2 model (``sam2`` decoder only; config.json +
            safetensors, see README for converting the official ``.pt`` files).
        freeze_sam2_encoder: Keep SAM-2's image encoder frozen (paper recipe); its mask decoder trains.
        sam2_empty_point_prompt: Prefix the ``[SEG]`` prompt with SAM-2's empty-click tokens (released code).
        sam2_object_score_gate: Gate SAM-2 masks by its object score (SAM-2 video behaviour; off by default).
        max_region_tokens: λ, most tokens injected per ``[SEG]`` (paper 128; released bench inference 8).
        coverage_threshold: A cell is selected when more than this fraction is covered.
        grid_resize: ``area`` (exact coverage) or ``nearest`` (released code).
        fusion: ``text_guided`` optical/SAR selection per region, or ``none`` (optical only).
        fusion_softmax_dim: See :func:`~rsim.terrascope.models.region.select_modality`.
        mask_threshold: Probability threshold of predicted masks used for region selection.
    """

    def __init__(
        self,
        vision: VisionEncoder,
        lm: Any,
        tokens: SpecialTokenIds,
        *,
        pixel_shuffle_scale: float = 0.5,
        prompt_dim: int = 256,
        mask_decoder: str = "light",
        decoder_hidden: int = 64,
        sam2_checkpoint: str | None = None,
        freeze_sam2_encoder: bool = True,
        sam2_empty_point_prompt: bool = True,
        sam2_object_score_gate: bool = False,
        max_region_tokens: int = 128,
        coverage_threshold: float = 0.5,
        grid_resize: GridResize = "area",
        fusion: Fusion = "text_guided",
        fusion_softmax_dim: FusionSoftmaxDim = "tokens",
        mask_threshold: float = 0.5,
    ) -> None:
        super().__init__()
        self.vision = vision
        self.lm: Any = lm
        self.tokens = tokens
        self.scale = pixel_shuffle_scale
        factor = round(1 / pixel_shuffle_scale)
        d_lm = int(lm.get_input_embeddings().embedding_dim)
        self.hidden_dim = d_lm
        self.projector = MLPProjector(vision.embed_dim * factor * factor, d_lm)
        self.seg_head = SegPromptHead(d_lm, prompt_dim)
        self.mask_decoder: LightMaskDecoder | Sam2MaskDecoder = build_mask_decoder(
            mask_decoder,
            in_channels=vision.embed_dim,
            prompt_dim=prompt_dim,
            hidden=decoder_hidden,
            sam2_checkpoint=sam2_checkpoint,
            freeze_sam2_encoder=freeze_sam2_encoder,
            sam2_empty_point_prompt=sam2_empty_point_prompt,
            sam2_object_score_gate=sam2_object_score_gate,
        )
        self.grid: tuple[int, int] = (vision.grid[0] // factor, vision.grid[1] // factor)
        self.tokens_per_image: int = self.grid[0] * self.grid[1]
        self.max_region_tokens = max_region_tokens
        self.coverage_threshold = coverage_threshold
        self.grid_resize: GridResize = grid_resize
        self.fusion: Fusion = fusion
        self.fusion_softmax_dim: FusionSoftmaxDim = fusion_softmax_dim
        self.mask_threshold = mask_threshold
        base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
        self._cache_kw = "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"

    # --- encoding ---------------------------------------------------------------------------------------------

    def encode_images(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(T, 3, S, S) → vision features (T, C, h, w) for the decoder and projected tokens (T, N, d)."""
        feats = self.vision(images)
        shuffled = pixel_shuffle(feats, self.scale).flatten(2).transpose(1, 2)
        return feats, self.projector(shuffled)

    def embed(self, input_ids: Tensor, visual: Tensor) -> Tensor:
        """Token embeddings with the ``img_context`` positions replaced by the visual tokens (in order).

        Raises:
            ValueError: The number of placeholders differs from the number of visual tokens.
        """
        emb = self.lm.get_input_embeddings()(input_ids)
        pos = input_ids == self.tokens.img_context
        flat = visual.reshape(-1, visual.shape[-1]).to(emb.dtype)
        if int(pos.sum()) != len(flat):
            raise ValueError(
                f"input_ids hold {int(pos.sum())} image-context tokens but the images give {len(flat)} visual "
                f"tokens ({visual.shape[0]} image(s) × {self.tokens_per_image}); build prompts with image_prompt()"
            )
        emb = emb.clone()
        emb[pos] = flat
        return emb

    def decoder_features(self, images: Tensor, vit_features: Tensor) -> tuple[Tensor, ...]:
        """Mask-decoder inputs of (T, 3, S, S) optical frames: light = the ViT features, sam2 = SAM-2's encoder."""
        return self.mask_decoder.image_features(images, vit_features)

    def predict_mask(self, hidden: Tensor, features: Tensor | tuple[Tensor, ...], size: tuple[int, int]) -> Tensor:
        """Mask logits (P, H, W) of ``[SEG]`` hidden states (P, d) on one frame's decoder features.

        Args:
            hidden: (P, d) ``[SEG]`` hidden states.
            features: One frame of :meth:`decoder_features` (each tensor without the frame dim); a single
                (C, h, w) tensor is taken as the light decoder's ViT features.
            size: Output (H, W).
        """
        prompt = self.seg_head(hidden.to(next(self.seg_head.parameters()).dtype))[None]
        frame = (features,) if isinstance(features, Tensor) else features
        return self.mask_decoder.decode(tuple(f[None] for f in frame), prompt, size)[0]

    def region_features(
        self, mask: Tensor, optical: Tensor, sar: Tensor | None, query: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Features injected for one mask: ``(features (K, d), token indices (K,), use_sar (K,))``."""
        idx = region_token_indices(
            mask,
            self.grid,
            max_tokens=self.max_region_tokens,
            threshold=self.coverage_threshold,
            mode=self.grid_resize,
        )
        opt = gather_tokens(optical, idx)
        if sar is None or self.fusion == "none":
            return opt, idx, torch.zeros(len(idx), dtype=torch.bool, device=opt.device)
        feats, use_sar = select_modality(opt, gather_tokens(sar, idx), query, softmax_dim=self.fusion_softmax_dim)
        return feats.to(opt.dtype), idx, use_sar

    # --- teacher forcing --------------------------------------------------------------------------------------

    def forward(
        self,
        samples: Sequence[TerraScopeSample],
        *,
        seg_weight: float = 0.5,
        ce_weight: float = 2.0,
        dice_weight: float = 0.5,
    ) -> dict[str, Tensor]:
        """Teacher-forced losses: ``loss = lm_loss + seg_weight · (ce_weight·BCE + dice_weight·Dice)``.

        Returns:
            ``{"loss", "lm_loss", "seg_loss", "mask_logits", "lm_targets"}``; ``mask_logits`` is the (M, S, S)
            stack of every ``[SEG]`` of the batch (empty if none); ``lm_targets`` counts the supervised tokens.
        """
        seqs, labels, seg_pos, seg_jobs = [], [], [], []
        for b, s in enumerate(samples):
            n_frames = len(s.images)
            stack = s.images if s.sar is None else torch.cat([s.images, s.sar])
            feats, toks = self.encode_images(stack)
            emb = self.embed(s.input_ids, toks)
            is_text = s.input_ids != self.tokens.img_context
            seg_at = torch.nonzero(s.input_ids == self.tokens.seg).flatten().tolist()
            if len(seg_at) != len(s.seg_masks):
                raise ValueError(f"sample {b}: {len(seg_at)} [SEG] tokens but {len(s.seg_masks)} masks")
            frames = s.seg_frames or [0] * len(seg_at)
            parts, lab_parts, start, offset = [], [], 0, 0
            dec: tuple[Tensor, ...] | None = None  # decoder features, computed at the first [SEG]
            for k, p in enumerate(seg_at):
                parts.append(emb[start : p + 1])
                lab_parts.append(s.labels[start : p + 1])
                f = frames[k]
                query = emb[: p + 1][is_text[: p + 1]]
                sar_tokens = toks[n_frames + f] if s.sar is not None else None
                reg, _, _ = self.region_features(s.seg_masks[k], toks[f], sar_tokens, query)
                parts.append(reg.to(emb.dtype))
                lab_parts.append(torch.full((len(reg),), -100, dtype=s.labels.dtype, device=s.labels.device))
                seg_pos.append((b, p + offset))
                if dec is None:
                    dec = self.decoder_features(s.images, feats[:n_frames])
                seg_jobs.append((tuple(x[f] for x in dec), s.seg_masks[k]))
                offset += len(reg)
                start = p + 1
            parts.append(emb[start:])
            lab_parts.append(s.labels[start:])
            seqs.append(torch.cat(parts))
            labels.append(torch.cat(lab_parts))
        length = max(len(x) for x in seqs)
        d = seqs[0].shape[-1]
        device = seqs[0].device
        inputs = torch.zeros(len(seqs), length, d, dtype=seqs[0].dtype, device=device)
        attn = torch.zeros(len(seqs), length, dtype=torch.long, device=device)
        tgt = torch.full((len(seqs), length), -100, dtype=torch.long, device=device)
        for b, (x, y) in enumerate(zip(seqs, labels, strict=True)):
            inputs[b, : len(x)], attn[b, : len(x)], tgt[b, : len(y)] = x, 1, y
        out = self.lm(inputs_embeds=inputs, attention_mask=attn, output_hidden_states=True, use_cache=False)
        logits = out.logits[:, :-1].float()
        lm_loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt[:, 1:].reshape(-1), ignore_index=-100)
        hidden = out.hidden_states[-1]
        if seg_jobs:
            size = (int(seg_jobs[0][1].shape[-2]), int(seg_jobs[0][1].shape[-1]))
            mask_logits = torch.stack(
                [
                    self.predict_mask(hidden[b, p][None], f, size)[0]
                    for (b, p), (f, _) in zip(seg_pos, seg_jobs, strict=True)
                ]
            ).float()
            target = torch.stack([m.float() for _, m in seg_jobs])
            seg = mask_loss(mask_logits, target, ce_weight=ce_weight, dice_weight=dice_weight)
        else:
            mask_logits = hidden.new_zeros(0, 1, 1)
            seg = hidden.sum().float() * 0.0
        n_targets = (tgt[:, 1:] != -100).sum()
        return {
            "loss": lm_loss + seg_weight * seg,
            "lm_loss": lm_loss,
            "seg_loss": seg,
            "mask_logits": mask_logits,
            "lm_targets": n_targets,
        }

    # --- generation -------------------------------------------------------------------------------------------

    def _step(self, embeds: Tensor, cache: Any) -> Any:
        kwargs: dict[str, Any] = {"inputs_embeds": embeds[None], "use_cache": True, "output_hidden_states": True}
        if cache is not None:
            kwargs[self._cache_kw] = cache
        return self.lm(**kwargs)

    @staticmethod
    def _cache_of(out: Any) -> Any:
        cache = getattr(out, "cache", None)
        return cache if cache is not None else getattr(out, "past_key_values", None)

    @torch.no_grad()
    def generate(
        self,
        input_ids: Tensor,
        images: Tensor,
        *,
        sar: Tensor | None = None,
        max_new_tokens: int = 256,
        logits_processor: LogitsProcessor | None = None,
        decode: Callable[[list[int]], str] | None = None,
        mask_size: tuple[int, int] | None = None,
        stop_ids: Sequence[int] | None = None,
    ) -> GenerationResult:
        """Greedy decoding of one prompt with a KV cache and region injection at every ``[SEG]``.

        Args:
            input_ids: (L,) prompt ids with image-context placeholders (optical frames, then SAR frames).
            images: (T, 3, S, S) optical frames.
            sar: (T, 3, S, S) SAR frames or ``None``.
            max_new_tokens: Most generated tokens (region positions not counted).
            logits_processor: ``f(generated_ids, logits) -> logits`` (e.g. :class:`LogitBias`).
            decode: ids → text, used for ``"Image: t"`` routing (frame 0 when ``None``).
            mask_size: Output size of the returned masks (default: the model input size).
            stop_ids: Tokens that end decoding (default: the eos id).

        Returns:
            Generated ids, one mask probability map per ``[SEG]``, the injected token indices, the frame of each
            ``[SEG]`` and the optical/SAR choice per injected token.
        """
        n_frames = len(images)
        stack = images if sar is None else torch.cat([images, sar])
        feats, toks = self.encode_images(stack)
        emb = self.embed(input_ids, toks)
        text_q = emb[input_ids != self.tokens.img_context]
        dec: tuple[Tensor, ...] | None = None  # decoder features, computed at the first [SEG]
        out = self._step(emb, None)
        cache, logits = self._cache_of(out), out.logits[0, -1]
        stops = set(stop_ids) if stop_ids is not None else {self.tokens.eos}
        size = mask_size or (images.shape[-2], images.shape[-1])
        embed_tokens = self.lm.get_input_embeddings()
        result = GenerationResult([], [], [], [], [])
        for _ in range(max_new_tokens):
            generated = torch.tensor(result.token_ids, dtype=torch.long, device=input_ids.device)
            scores = logits_processor(generated, logits) if logits_processor is not None else logits
            nxt = int(scores.argmax())
            result.token_ids.append(nxt)
            if nxt in stops:
                break
            tok_emb = embed_tokens(torch.tensor([nxt], device=input_ids.device))
            text_q = torch.cat([text_q, tok_emb])
            out = self._step(tok_emb, cache)
            cache, logits = self._cache_of(out), out.logits[0, -1]
            if nxt != self.tokens.seg:
                continue
            frame = frame_from_text(decode(result.token_ids), n_frames) if decode is not None else 0
            hidden = out.hidden_states[-1][0, -1]
            if dec is None:
                dec = self.decoder_features(images, feats[:n_frames])
            frame_feats = tuple(x[frame] for x in dec)
            prob = self.predict_mask(hidden[None], frame_feats, (images.shape[-2], images.shape[-1]))[0].sigmoid()
            sar_tokens = toks[n_frames + frame] if sar is not None else None
            reg, idx, use_sar = self.region_features(prob > self.mask_threshold, toks[frame], sar_tokens, text_q)
            out = self._step(reg.to(tok_emb.dtype), cache)
            cache, logits = self._cache_of(out), out.logits[0, -1]
            if size != tuple(prob.shape):
                prob = F.interpolate(prob[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
            result.masks.append(prob.float())
            result.regions.append(idx)
            result.frames.append(frame)
            result.use_sar.append(use_sar)
        result.last_logits = logits
        return result
