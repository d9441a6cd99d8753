"""RS-InternVL-style vision-language model: frozen S1/S2 ViTs, linear projections, a causal LM with LoRA.

The visual tokens (all S1 tokens, then all S2 tokens, class tokens included) precede the instruction tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import timm
import torch
from peft import LoraConfig, get_peft_model
from torch import Tensor, nn


class RSInternVL(nn.Module):
    """Frozen per-sensor ViTs -> linear projections -> causal LM with LoRA.

    Args:
        lm: A transformers causal LM (``AutoModelForCausalLM``); its weights are frozen, LoRA adapters are added.
        s1_channels, s2_channels: Input channels of the two encoders (VV, VH; 10 S2 bands).
        img_size: Encoder input size (120 px).
        encoder: timm ViT name (created with ``pretrained=False``; load BigEarthNet weights with
            ``load_encoder``).
        encoder_kwargs: Extra timm arguments (e.g. ``patch_size``, ``embed_dim``, ``depth`` for tiny tests).
        lora_r, lora_alpha, lora_dropout: LoRA settings [third-party: 8, 32, 0.1].
        lora_targets: LM module names that get adapters.
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
    ) -> None:
        super().__init__()
        kwargs = {"img_size": img_size, "num_classes": 0, **(encoder_kwargs or {})}
        self.s1_encoder = timm.create_model(encoder, pretrained=False, in_chans=s1_channels, **kwargs)
        self.s2_encoder = timm.create_model(encoder, pretrained=False, in_chans=s2_channels, **kwargs)
        for enc in (self.s1_encoder, self.s2_encoder):
            enc.requires_grad_(False)
            enc.eval()
        hidden = int(getattr(lm, "config").hidden_size)  # noqa: B009 - transformers models carry a config
        self.s1_proj = nn.Linear(int(getattr(self.s1_encoder, "num_features")), hidden)  # noqa: B009
        self.s2_proj = nn.Linear(int(getattr(self.s2_encoder, "num_features")), hidden)  # noqa: B009
        config = LoraConfig(
            r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=list(lora_targets),
            task_type="CAUSAL_LM",
        )  # fmt: skip
        self.lm = get_peft_model(lm, config)  # freezes the base LM

    def train(self, mode: bool = True) -> RSInternVL:
        """Keep the frozen encoders in eval mode."""
        super().train(mode)
        self.s1_encoder.eval()
        self.s2_encoder.eval()
        return self

    def visual_tokens(self, s1: Tensor, s2: Tensor) -> Tensor:
        """``(B, T_s1 + T_s2, hidden)`` projected patch and class tokens of both sensors."""
        with torch.no_grad():
            f1 = getattr(self.s1_encoder, "forward_features")(s1)  # noqa: B009
            f2 = getattr(self.s2_encoder, "forward_features")(s2)  # noqa: B009
        return torch.cat([self.s1_proj(f1), self.s2_proj(f2)], dim=1)

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
