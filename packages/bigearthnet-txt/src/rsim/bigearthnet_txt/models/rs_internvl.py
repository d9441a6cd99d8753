"""RS-InternVL-style vision-language model: frozen S1/S2 ViTs, linear projections, a causal LM with LoRA.

The visual tokens (all S1 tokens, then all S2 tokens, then the optional RGB encoder's tokens, class tokens
included) precede the instruction tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from rsim.core.models import create_internvit
from torch import Tensor, nn

INTERNVIT_SIZE = 448  # InternViT-300M-448px tile side


class RSInternVL(nn.Module):
    """Frozen per-sensor ViTs -> linear projections -> causal LM with LoRA.

    Args:
        lm: A transformers causal LM (``AutoModelForCausalLM``); its weights are frozen, LoRA adapters are added.
        s1_channels, s2_channels: Input channels of the two encoders (VV, VH; 10 S2 bands).
        img_size: Encoder input size (120 px).
        encoder: timm ViT name (created with ``pretrained=False``; load BigEarthNet weights with
            :func:`load_encoder`).
        encoder_kwargs: Extra timm arguments (e.g. ``patch_size``, ``embed_dim``, ``depth`` for tiny tests).
        lora_r, lora_alpha, lora_dropout: LoRA settings [third-party: 8, 32, 0.1].
        lora_targets: LM module names that get adapters.
        rgb_encoder: Optional frozen encoder of an RGB composite (the paper feeds InternViT RGB tokens after the S1
            and S2 tokens): ``"internvit"`` = InternViT-300M-448px (:func:`rsim.core.models.create_internvit`,
            official checkpoints), any other string = a timm model name; ``None`` disables it.
        rgb_encoder_kwargs: Extra arguments of the RGB encoder (timm, or ``create_internvit``: ``num_heads``,
            ``embed_dim``, ``depth`` for tiny tests; sizes come from the checkpoint when one is given).
        rgb_bands: Indices of the red, green and blue bands among the S2 channels (B04, B03, B02 = 2, 1, 0 for
            the order B02, B03, B04, ...).
        rgb_img_size: Size the RGB composite is resized to on the device (bilinear); default 448 for
            ``internvit``, else ``img_size``.
        rgb_encoder_weights: ``internvit`` only: a local InternViT-300M-448px file or InternVL chat checkpoint
            (file, ``*.index.json`` or folder; ``vision_model.*`` is read); ``None`` = random.
    """

    def __init__(
        self,
        lm: nn.Module,
        *,
        s1_channels: int = 2,
        s2_channels: int = 10,
        img_size: int = 120,
        encoder: str = "vit_small_patch16_224",
        encoder_kwargs: dict[str, Any] | None = None,
        lora_r: int = 8,
        lora_alpha: int = 32,
        lora_dropout: float = 0.1,
        lora_targets: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj"),
        rgb_encoder: str | None = None,
        rgb_encoder_kwargs: dict[str, Any] | None = None,
        rgb_bands: Sequence[int] = (2, 1, 0),
        rgb_img_size: int | None = None,
        rgb_encoder_weights: str | Path | None = None,
    ) -> None:
        super().__init__()
        kwargs = {"img_size": img_size, "num_classes": 0, **(encoder_kwargs or {})}
        self.s1_encoder = timm.create_model(encoder, pretrained=False, in_chans=s1_channels, **kwargs)
        self.s2_encoder = timm.create_model(encoder, pretrained=False, in_chans=s2_channels, **kwargs)
        hidden = int(getattr(lm, "config").hidden_size)  # noqa: B009 - transformers models carry a config
        self.rgb_encoder: nn.Module | None = None
        self.rgb_proj: nn.Linear | None = None
        if len(rgb_bands) != 3 or not all(0 <= b < s2_channels for b in rgb_bands):
            raise ValueError(f"rgb_bands {list(rgb_bands)}: expected 3 indices into the {s2_channels} S2 channels")
        self.rgb_bands = tuple(int(b) for b in rgb_bands)
        self.rgb_img_size = int(rgb_img_size or (INTERNVIT_SIZE if rgb_encoder == "internvit" else img_size))
        if rgb_encoder_weights is not None and rgb_encoder != "internvit":
            raise ValueError(
                f"rgb_encoder_weights is for rgb_encoder='internvit' (got {rgb_encoder!r}); load timm encoders "
                "with encoder_weights"
            )
        if rgb_encoder == "internvit":
            self.rgb_encoder = create_internvit(
                rgb_encoder_weights, image_size=self.rgb_img_size, **(rgb_encoder_kwargs or {})
            )
            self.rgb_proj = nn.Linear(int(getattr(self.rgb_encoder, "num_features")), hidden)  # noqa: B009
        elif rgb_encoder is not None:
            rgb_kwargs = {"img_size": self.rgb_img_size, "num_classes": 0, **(rgb_encoder_kwargs or {})}
            self.rgb_encoder = timm.create_model(rgb_encoder, pretrained=False, in_chans=3, **rgb_kwargs)
            self.rgb_proj = nn.Linear(int(getattr(self.rgb_encoder, "num_features")), hidden)  # noqa: B009
        for enc in self.frozen_encoders():
            enc.requires_grad_(False)
            enc.eval()
        self.s1_proj = nn.Linear(int(getattr(self.s1_encoder, "num_features")), hidden)  # noqa: B009
        self.s2_proj = nn.Linear(int(getattr(self.s2_encoder, "num_features")), hidden)  # noqa: B009
        config = LoraConfig(
            r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=list(lora_targets),
            task_type="CAUSAL_LM",
        )  # fmt: skip
        self.lm = get_peft_model(lm, config)  # freezes the base LM

    def frozen_encoders(self) -> list[nn.Module]:
        """The S1, S2 and (if any) RGB encoders."""
        return [self.s1_encoder, self.s2_encoder, *([self.rgb_encoder] if self.rgb_encoder is not None else [])]

    def train(self, mode: bool = True) -> RSInternVL:
        """Keep the frozen encoders in eval mode."""
        super().train(mode)
        for enc in self.frozen_encoders():
            enc.eval()
        return self

    def rgb(self, s2: Tensor) -> Tensor:
        """The RGB composite of ``s2`` resized to ``rgb_img_size`` (bilinear, on the input's device)."""
        rgb = s2[:, list(self.rgb_bands)]
        if rgb.shape[-1] != self.rgb_img_size or rgb.shape[-2] != self.rgb_img_size:
            rgb = F.interpolate(rgb, size=(self.rgb_img_size, self.rgb_img_size), mode="bilinear", align_corners=False)
        return rgb

    def visual_tokens(self, s1: Tensor, s2: Tensor) -> Tensor:
        """``(B, T_s1 + T_s2 [+ T_rgb], hidden)`` projected patch and class tokens of both sensors (and RGB)."""
        with torch.no_grad():
            f1 = getattr(self.s1_encoder, "forward_features")(s1)  # noqa: B009
            f2 = getattr(self.s2_encoder, "forward_features")(s2)  # noqa: B009
            f3 = None
            if self.rgb_encoder is not None:
                f3 = getattr(self.rgb_encoder, "forward_features")(self.rgb(s2))  # noqa: B009
        tokens = [self.s1_proj(f1), self.s2_proj(f2)]
        if f3 is not None and self.rgb_proj is not None:
            tokens.append(self.rgb_proj(f3))
        return torch.cat(tokens, dim=1)

    def forward(
        self, s1: Tensor, s2: Tensor, input_ids: Tensor, attention_mask: Tensor, labels: Tensor | None = None
    ) -> Any:
        """Run the LM on ``[visual tokens; text tokens]``; ``labels`` use -100 for ignored text positions."""
        vis = self.visual_tokens(s1, s2)
        text = self.lm.get_input_embeddings()(input_ids)
        embeds = torch.cat([vis.to(text.dtype), text], dim=1)
        mask = torch.cat([attention_mask.new_ones(vis.shape[:2]), attention_mask], dim=1)
        full_labels = None
        if labels is not None:
            full_labels = torch.cat([labels.new_full(vis.shape[:2], -100), labels], dim=1)
        return self.lm(inputs_embeds=embeds, attention_mask=mask, labels=full_labels)

    @torch.no_grad()
    def generate(
        self, s1: Tensor, s2: Tensor, prompt_ids: list[list[int]], eos_id: int, max_new_tokens: int
    ) -> list[list[int]]:
        """Greedy decoding, one sample at a time (no KV cache: meant for short answers)."""
        out: list[list[int]] = []
        for i, prompt in enumerate(prompt_ids):
            ids = torch.tensor([prompt], device=s1.device)
            new: list[int] = []
            for _ in range(max_new_tokens):
                logits = self.forward(s1[i : i + 1], s2[i : i + 1], ids, torch.ones_like(ids)).logits
                token = int(logits[0, -1].argmax())
                if token == eos_id:
                    break
                new.append(token)
                ids = torch.cat([ids, ids.new_tensor([[token]])], dim=1)
            out.append(new)
        return out


def load_encoder(encoder: nn.Module, path: str | Path, *, prefix: str = "") -> None:
    """Load a checkpoint into a frozen encoder (strict): ``.safetensors`` or a torch file of tensors.

    A Lightning checkpoint's ``state_dict`` entry is unwrapped; keys starting with ``prefix`` keep only the rest
    (e.g. ``prefix="model.vision_encoder."`` for a classifier checkpoint), the other keys are dropped.

    Raises:
        FileNotFoundError: ``path`` is missing.
        DataFormatError: The file holds no tensors, or its keys do not match the encoder.
    """
    from rsim.core.errors import DataFormatError
    from rsim.core.weights import read_state_dict

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"encoder checkpoint {path} is missing")
    state = read_state_dict(path)
    if prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise DataFormatError(
            f"encoder checkpoint {path} does not match the encoder: missing keys {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''} (set the key prefix or the encoder options)"
        )
