"""Lightning task: stage-1 (mask decoder on referring segmentation) and stage-2 (Terra-CoT, LoRA) training."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from rsim.terrascope.build import build_model, format_prompt, tokens_of
from rsim.terrascope.models.terrascope import TerraScopeSample

__all__ = ["TerraScopeTask"]


class TerraScopeTask(LightningModule):
    """Teacher-forced training of :class:`~rsim.terrascope.models.terrascope.TerraScopeModel`.

    Args:
        vision: Vision-encoder arguments (timm name, ``img_size``, optional local ``weights``, timm kwargs).
        lm: Causal-LM config mapping (random init) or ``{"path": local folder}``.
        tokenizer: ``byte`` or a local tokenizer folder.
        stage: 1 = only ``[SEG]`` head + mask decoder train; 2 = projector + mask branch + LM (LoRA when given).
        lora: peft LoRA arguments (stage 2); ``None`` trains the whole LM in stage 2.
        model_options: Further model arguments (``max_region_tokens``, ``fusion``...).
        chat_template: ``plain`` or ``qwen``.
        system_prompt: System turn of the ``qwen`` template.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_ratio: Linear warm-up fraction of the steps, then cosine decay.
        seg_weight: λ of the mask loss.
        ce_weight: Weight of the pixel sigmoid-CE inside the mask loss.
        dice_weight: Weight of Dice inside the mask loss.
        train_new_embeddings: Also train the input/output embeddings (for the added special tokens).
    """

    def __init__(
        self,
        vision: dict[str, Any],
        lm: dict[str, Any],
        tokenizer: str = "byte",
        stage: Literal[1, 2] = 2,
        lora: dict[str, Any] | None = None,
        model_options: dict[str, Any] | None = None,
        chat_template: str = "plain",
        system_prompt: str = "",
        lr: float = 4e-5,
        weight_decay: float = 0.05,
        warmup_ratio: float = 0.05,
        seg_weight: float = 0.5,
        ce_weight: float = 2.0,
        dice_weight: float = 0.5,
        train_new_embeddings: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage}")
        self.model, self.tokenizer = build_model(
            vision=vision, lm=lm, tokenizer=tokenizer, lora=lora if stage == 2 else None, model_options=model_options
        )
        self._freeze(stage, lora is not None, train_new_embeddings)

    def _freeze(self, stage: int, lora: bool, embeddings: bool) -> None:
        m = self.model
        m.vision.requires_grad_(False)
        m.projector.requires_grad_(stage == 2)
        m.seg_head.requires_grad_(True)
        m.mask_decoder.requires_grad_(True)
        if stage == 1:
            m.lm.requires_grad_(False)
        elif not lora:
            m.lm.requires_grad_(True)
        if embeddings and stage == 2:
            m.lm.get_input_embeddings().requires_grad_(True)
            m.lm.get_output_embeddings().requires_grad_(True)

    def samples(self, batch: dict[str, list[Any]]) -> list[TerraScopeSample]:
        """Tokenise prompts and responses of a device batch into teacher-forcing samples."""
        out = []
        for i in range(len(batch["question"])):
            images, sar = batch["images"][i], batch["sar"][i]
            prompt = format_prompt(
                batch["question"][i],
                n_frames=len(images),
                tokens_per_image=self.model.tokens_per_image,
                with_sar=sar is not None,
                chat_template=self.hparams["chat_template"],
                system_prompt=self.hparams["system_prompt"],
            )
            p_ids = tokens_of(self.tokenizer, prompt)
            r_ids = [*tokens_of(self.tokenizer, batch["response"][i]), self.model.tokens.eos]
            ids = torch.tensor(p_ids + r_ids, device=images.device)
            labels = torch.tensor([-100] * len(p_ids) + r_ids, device=images.device)
            masks = batch["masks"][i]
            out.append(TerraScopeSample(ids, labels, images, list(masks), list(batch["seg_frames"][i]), sar))
        return out

    def _losses(self, batch: dict[str, list[Any]]) -> dict[str, torch.Tensor]:
        h = self.hparams
        return self.model(
            self.samples(batch), seg_weight=h["seg_weight"], ce_weight=h["ce_weight"], dice_weight=h["dice_weight"]
        )

    def training_step(self, batch: dict[str, list[Any]], batch_idx: int) -> torch.Tensor:  # noqa: D102
        out = self._losses(batch)
        n = len(batch["question"])
        for key in ("loss", "lm_loss", "seg_loss"):
            self.log(f"train/{key}", out[key], batch_size=n, prog_bar=key == "loss")
        return out["loss"]

    def validation_step(self, batch: dict[str, list[Any]], batch_idx: int) -> None:  # noqa: D102
        out = self._losses(batch)
        n = len(batch["question"])
        for key in ("loss", "lm_loss", "seg_loss"):
            self.log(f"val/{key}", out[key], batch_size=n)

    def configure_optimizers(self) -> Any:  # noqa: D102
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"])
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = int(self.hparams["warmup_ratio"] * total)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(total - warmup, 1))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
