"""Lightning task of the RS-InternVL-style model: answer-only cross-entropy, LoRA, warm-up + cosine schedule."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from lightning import LightningModule
from rsim.bigearthnet_txt.models import RSInternVL, load_encoder
from torch import Tensor


def load_tokenizer(path: str) -> Any:
    """A transformers tokenizer from a local folder (never downloaded)."""
    from transformers import AutoTokenizer

    if not Path(path).is_dir():
        raise FileNotFoundError(f"tokenizer folder {path} is missing; expected a saved transformers tokenizer")
    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def build_lm(lm_path: str | None, lm_config: dict[str, Any] | None) -> torch.nn.Module:
    """A causal LM from a local checkpoint folder, or randomly initialised from a config dict (``model_type`` key)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if lm_path is not None:
        if not Path(lm_path).is_dir():
            raise FileNotFoundError(f"language model folder {lm_path} is missing")
        return AutoModelForCausalLM.from_pretrained(lm_path, local_files_only=True)
    if lm_config is None:
        raise ValueError("give lm_path (local weights) or lm_config (random initialisation)")
    options = dict(lm_config)
    config = AutoConfig.for_model(options.pop("model_type"), **options)
    return AutoModelForCausalLM.from_config(config)


class RSInternVLTask(LightningModule):
    """Fine-tune :class:`RSInternVL` on BigEarthNet.txt batches (``image`` in S1S2 order: VV, VH, then S2).

    Args:
        tokenizer: Local tokenizer folder.
        lm_path: Local causal-LM folder (e.g. the Qwen2.5-0.5B LM of InternVL3-1B), or ``None`` with ``lm_config``.
        lm_config: transformers config dict for a randomly initialised LM (tests, smoke runs).
        s1_channels: Leading channels of ``image`` that go to the S1 encoder.
        encoder, encoder_kwargs, img_size: timm encoder settings (see :class:`RSInternVL`).
        lora_r, lora_alpha, lora_dropout, lora_targets: LoRA settings.
        lr, warmup_start_lr, warmup_fraction: Peak LR 1e-4, linear warm-up from 1e-6 over 1 % of steps, then cosine.
        max_new_tokens: Greedy decoding length in ``predict_step``.
        rgb_encoder, rgb_encoder_kwargs, rgb_bands, rgb_img_size: Optional frozen RGB encoder whose tokens follow
            the S2 tokens (see :class:`RSInternVL`).
        encoder_weights: Local checkpoints of the frozen encoders, ``{"s1"|"s2"|"rgb": path}``. With
            ``rgb_encoder: internvit`` the ``rgb`` entry is an official InternViT-300M-448px file or InternVL chat
            checkpoint (read by :func:`rsim.core.models.create_internvit`; the prefix is not applied).
        encoder_weights_prefix: Key prefix stripped from those checkpoints (e.g. ``model.``).
    """

    def __init__(
        self,
        tokenizer: str,
        lm_path: str | None = None,
        lm_config: dict[str, Any] | None = None,
        s1_channels: int = 2,
        s2_channels: int = 10,
        encoder: str = "vit_small_patch16_224",
        encoder_kwargs: dict[str, Any] | None = None,
        img_size: int = 120,
        lora_r: int = 8,
        lora_alpha: int = 32,
        lora_dropout: float = 0.1,
        lora_targets: list[str] | None = None,
        lr: float = 1e-4,
        warmup_start_lr: float = 1e-6,
        warmup_fraction: float = 0.01,
        max_new_tokens: int = 32,
        rgb_encoder: str | None = None,
        rgb_encoder_kwargs: dict[str, Any] | None = None,
        rgb_bands: list[int] | None = None,
        rgb_img_size: int | None = None,
        encoder_weights: dict[str, str] | None = None,
        encoder_weights_prefix: str = "",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer = load_tokenizer(tokenizer)
        if self.tokenizer.eos_token_id is None or self.tokenizer.pad_token_id is None:
            raise ValueError(f"tokenizer {tokenizer} needs eos and pad tokens")
        self.model = RSInternVL(
            build_lm(lm_path, lm_config),
            s1_channels=s1_channels,
            s2_channels=s2_channels,
            img_size=img_size,
            encoder=encoder,
            encoder_kwargs=encoder_kwargs,
            lora_r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            lora_targets=tuple(lora_targets or ("q_proj", "k_proj", "v_proj", "o_proj")),
            rgb_encoder=rgb_encoder,
            rgb_encoder_kwargs=rgb_encoder_kwargs,
            rgb_bands=tuple(rgb_bands or (2, 1, 0)),
            rgb_img_size=rgb_img_size,
            rgb_encoder_weights=(encoder_weights or {}).get("rgb") if rgb_encoder == "internvit" else None,
        )
        encoders = {"s1": self.model.s1_encoder, "s2": self.model.s2_encoder, "rgb": self.model.rgb_encoder}
        for name, path in (encoder_weights or {}).items():
            if name == "rgb" and rgb_encoder == "internvit":
                continue  # loaded above from the official layout
            target = encoders.get(name)
            if target is None:
                raise ValueError(f"encoder_weights key {name!r}: expected s1, s2 or rgb (with rgb_encoder set)")
            load_encoder(target, path, prefix=encoder_weights_prefix)

    def _split(self, image: Tensor) -> tuple[Tensor, Tensor]:
        c = self.hparams["s1_channels"]
        return image[:, :c], image[:, c:]

    def prompt_ids(self, prompt: str) -> list[int]:
        """Token ids of an instruction followed by the answer separator (a newline)."""
        return list(self.tokenizer(prompt + "\n", add_special_tokens=False)["input_ids"])

    def encode(self, inputs: list[str], outputs: list[str]) -> dict[str, Tensor]:
        """Right-padded ids, mask and labels (-100 on prompt and padding; answer + eos supervised)."""
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        seqs, labels = [], []
        for q, a in zip(inputs, outputs, strict=True):
            p = self.prompt_ids(q)
            ans = [*self.tokenizer(a, add_special_tokens=False)["input_ids"], eos]
            seqs.append(p + ans)
            labels.append([-100] * len(p) + ans)
        n = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), n), pad, dtype=torch.long)
        lab = torch.full((len(seqs), n), -100, dtype=torch.long)
        mask = torch.zeros((len(seqs), n), dtype=torch.long)
        for i, (s, lb) in enumerate(zip(seqs, labels, strict=True)):
            ids[i, : len(s)] = torch.tensor(s)
            lab[i, : len(lb)] = torch.tensor(lb)
            mask[i, : len(s)] = 1
        return {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device), "labels": lab.to(self.device)}

    def loss(self, batch: dict[str, Any]) -> Tensor:
        """Cross-entropy on the answer tokens."""
        s1, s2 = self._split(batch["image"])
        return self.model(s1, s2, **self.encode(batch["input"], batch["output"])).loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:  # noqa: D102
        loss = self.loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["input"]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:  # noqa: D102
        self.log("val/loss", self.loss(batch), batch_size=len(batch["input"]))

    def answer(self, image: Tensor, inputs: list[str]) -> list[str]:
        """Greedy answers to the instructions."""
        s1, s2 = self._split(image)
        ids = self.model.generate(
            s1, s2, [self.prompt_ids(q) for q in inputs], self.tokenizer.eos_token_id, self.hparams["max_new_tokens"]
        )
        return [self.tokenizer.decode(x, skip_special_tokens=True) for x in ids]

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[str]:  # noqa: D102
        return self.answer(batch["image"], batch["input"])

    def configure_optimizers(self) -> Any:  # noqa: D102
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.hparams["lr"])
        total = max(int(self.trainer.estimated_stepping_batches), 1) if self._trainer is not None else 1
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total, self.hparams))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def lr_lambda(total: int, hp: Any) -> Any:
    """Factor of the peak LR: linear warm-up from ``warmup_start_lr`` over ``warmup_fraction`` of steps, then cosine."""
    warm = max(1, math.ceil(hp["warmup_fraction"] * total))
    start = hp["warmup_start_lr"] / hp["lr"]

    def factor(step: int) -> float:
        if step < warm:
            return start + (1 - start) * step / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return 0.5 * (1 + math.cos(math.pi * progress))

    return factor
