"""Learned slimmable training of a timm ViT: sandwich rule + in-place distillation, MoCo or MAE objective."""

from __future__ import annotations

import copy
import random
from typing import Any, Literal

import kornia.augmentation as K
import timm
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from rsim.core.tasks.classification import warmup_cosine_schedule
from rsim.slimming.models.foundation import sincos_pos_embed
from rsim.slimming.slim import SlimMode, blocks_at_width
from timm.models.vision_transformer import Block, VisionTransformer
from torch import Tensor, nn

__all__ = ["SlimmableTask", "forward_at_width", "sandwich_widths"]

Objective = Literal["moco", "mae"]


def sandwich_widths(n: int, s_min: float, rng: random.Random) -> list[float]:
    """Sandwich rule: full width, minimum width and ``n - 2`` widths drawn uniformly in ``[s_min, 1]``."""
    if n < 2:
        raise ValueError(f"the sandwich rule needs n_sampled >= 2, got {n}")
    return [1.0, s_min, *sorted((rng.uniform(s_min, 1.0) for _ in range(n - 2)), reverse=True)]


def forward_at_width(vit: VisionTransformer, x: Tensor, s: float, mode: SlimMode = "width") -> Tensor:
    """Pooled features of a timm ViT whose blocks run at width ``s`` (equals ``slim(vit, s)``'s features)."""
    h = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(x))))
    h = vit.norm(blocks_at_width(vit.blocks, h, s, mode))
    return vit.forward_head(h, pre_logits=True)


def _mlp(dim: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, out))


class SlimmableTask(LightningModule):
    """Slimmable pre-training of a timm ViT encoder (``self.encoder``), evaluated later by ``slimming sweep``.

    Each step runs the widths of :func:`sandwich_widths`; every width gets the objective's loss (InfoNCE against
    full-width momentum keys, or masked reconstruction) and, with ``inplace_distill``, a distillation loss toward
    the full width's detached output (KL of the InfoNCE logits, or MSE of the reconstructions). Batches are
    ``{"image": [B, C, H, W], ...}`` (labels are not used).

    Args:
        backbone: timm ViT name (``pretrained=False``).
        in_channels: Input channels.
        img_size: Input size in pixels.
        backbone_kwargs: Extra ``timm.create_model`` arguments (``embed_dim``, ``depth``, ``patch_size``...).
        objective: ``moco`` or ``mae``.
        n_sampled: Widths per step (sandwich size) [assumption: 4].
        s_min: Smallest trained width [assumption: 0.25].
        mode: Slimming mode (``width`` or ``heads``).
        inplace_distill: Add the in-place distillation loss for sub-widths.
        distill_weight: Its weight.
        lr: AdamW peak learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: Linear warm-up steps before cosine decay.
        temperature: InfoNCE temperature (MoCo).
        momentum: Momentum-encoder EMA coefficient (MoCo).
        proj_dim: Projection output width (MoCo).
        mask_ratio: Masked patch fraction (MAE).
        decoder_dim: MAE decoder width.
        decoder_depth: MAE decoder blocks.
        norm_pix_loss: Normalise each target patch (MAE).
        seed: Seed of the width sampler.
    """

    def __init__(
        self,
        backbone: str = "vit_small_patch16_224",
        in_channels: int = 10,
        img_size: int = 224,
        backbone_kwargs: dict[str, Any] | None = None,
        objective: Objective = "moco",
        n_sampled: int = 4,
        s_min: float = 0.25,
        mode: SlimMode = "width",
        inplace_distill: bool = True,
        distill_weight: float = 1.0,
        lr: float = 1.5e-4,
        weight_decay: float = 0.05,
        warmup_steps: int = 100,
        temperature: float = 0.2,
        momentum: float = 0.99,
        proj_dim: int = 256,
        mask_ratio: float = 0.75,
        decoder_dim: int = 128,
        decoder_depth: int = 2,
        norm_pix_loss: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if objective not in ("moco", "mae"):
            raise ValueError(f"objective must be 'moco' or 'mae', got {objective!r}")
        self.encoder: VisionTransformer = timm.create_model(  # type: ignore[assignment]
            backbone,
            pretrained=False,
            in_chans=in_channels,
            img_size=img_size,
            num_classes=0,
            **(backbone_kwargs or {}),
        )
        dim = int(self.encoder.embed_dim)
        self.rng = random.Random(seed)
        if objective == "moco":
            self.projector = _mlp(dim, 2 * dim, proj_dim)
            self.momentum_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
            self.momentum_projector = copy.deepcopy(self.projector).requires_grad_(False)
            self.augment = nn.Sequential(
                K.RandomResizedCrop((img_size, img_size), scale=(0.3, 1.0)),
                K.RandomHorizontalFlip(),
                K.RandomVerticalFlip(),
                K.RandomGaussianNoise(std=0.05, p=0.5),
            )
        else:
            if getattr(self.encoder, "cls_token", None) is None or self.encoder.num_prefix_tokens != 1:
                raise ValueError("the MAE objective needs a ViT with exactly one cls token")
            patch = int(self.encoder.patch_embed.patch_size[0])
            grid = int(self.encoder.patch_embed.grid_size[0])
            self.decoder_embed = nn.Linear(dim, decoder_dim)
            self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
            self.register_buffer("decoder_pos", sincos_pos_embed(decoder_dim, grid), persistent=False)
            heads = max(1, decoder_dim // 32)
            self.decoder = nn.Sequential(*[Block(decoder_dim, heads, 4.0, qkv_bias=True) for _ in range(decoder_depth)])
            self.decoder_norm = nn.LayerNorm(decoder_dim)
            self.decoder_pred = nn.Linear(decoder_dim, patch * patch * in_channels)
            nn.init.normal_(self.mask_token, std=0.02)

    # -- MoCo ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _momentum_update(self) -> None:
        m = self.hparams["momentum"]
        for online, target in ((self.encoder, self.momentum_encoder), (self.projector, self.momentum_projector)):
            for p, q in zip(online.parameters(), target.parameters(), strict=True):
                q.mul_(m).add_(p.detach(), alpha=1 - m)

    def _moco_step(self, x: Tensor, widths: list[float]) -> list[Tensor]:
        v1, v2 = self.augment(x), self.augment(x)
        with torch.no_grad():
            k1 = F.normalize(self.momentum_projector(self.momentum_encoder(v1)), dim=1)
            k2 = F.normalize(self.momentum_projector(self.momentum_encoder(v2)), dim=1)
        t = self.hparams["temperature"]
        labels = torch.arange(x.shape[0], device=x.device)
        losses: list[Tensor] = []
        full_logits: tuple[Tensor, Tensor] | None = None
        for s in widths:
            q1 = F.normalize(self.projector(forward_at_width(self.encoder, v1, s, self.hparams["mode"])), dim=1)
            q2 = F.normalize(self.projector(forward_at_width(self.encoder, v2, s, self.hparams["mode"])), dim=1)
            l12, l21 = q1 @ k2.T / t, q2 @ k1.T / t
            loss = F.cross_entropy(l12, labels) + F.cross_entropy(l21, labels)
            if full_logits is None:
                full_logits = (l12.detach(), l21.detach())
            elif self.hparams["inplace_distill"]:
                kd = sum(
                    F.kl_div(F.log_softmax(mine, 1), F.log_softmax(ref, 1), log_target=True, reduction="batchmean")
                    for mine, ref in zip((l12, l21), full_logits, strict=True)
                )
                loss = loss + self.hparams["distill_weight"] * kd
            losses.append(loss)
        return losses

    # -- MAE -------------------------------------------------------------------------------------------------
    def _patchify(self, x: Tensor) -> Tensor:
        p = int(self.encoder.patch_embed.patch_size[0])
        b, c, h, w = x.shape
        x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, (h // p) * (w // p), p * p * c)

    def _mae_step(self, x: Tensor, widths: list[float]) -> list[Tensor]:
        enc: Any = self.encoder
        tokens = enc.patch_embed(x) + enc.pos_embed[:, 1:]
        b, n, d = tokens.shape
        keep = max(1, int(n * (1 - self.hparams["mask_ratio"])))
        ids_shuffle = torch.rand(b, n, device=x.device).argsort(1)
        ids_restore = ids_shuffle.argsort(1)
        kept = tokens.gather(1, ids_shuffle[:, :keep, None].expand(-1, -1, d))
        cls = (enc.cls_token + enc.pos_embed[:, :1]).expand(b, -1, -1)
        h0 = torch.cat([cls, kept], 1)
        mask = torch.ones(b, n, device=x.device)
        mask[:, :keep] = 0
        mask = mask.gather(1, ids_restore)
        target = self._patchify(x)
        if self.hparams["norm_pix_loss"]:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        losses: list[Tensor] = []
        full_pred: Tensor | None = None
        for s in widths:
            h = enc.norm(blocks_at_width(enc.blocks, h0, s, self.hparams["mode"]))
            z = self.decoder_embed(h)
            fill = self.mask_token.expand(b, n + 1 - z.shape[1], -1)
            seq = torch.cat([z[:, 1:], fill], 1).gather(1, ids_restore[..., None].expand(-1, -1, z.shape[2]))
            decoder_pos: Tensor = self.decoder_pos  # type: ignore[assignment]
            seq = seq + decoder_pos[:, 1:]
            pred = self.decoder_pred(self.decoder_norm(self.decoder(seq)))
            loss = (((pred - target) ** 2).mean(-1) * mask).sum() / mask.sum()
            if full_pred is None:
                full_pred = pred.detach()
            elif self.hparams["inplace_distill"]:
                kd = (((pred - full_pred) ** 2).mean(-1) * mask).sum() / mask.sum()
                loss = loss + self.hparams["distill_weight"] * kd
            losses.append(loss)
        return losses

    # -- Lightning -------------------------------------------------------------------------------------------
    def forward(self, x: Tensor, s: float = 1.0) -> Tensor:
        """Encoder features ``[B, D]`` at width ``s``."""
        return forward_at_width(self.encoder, x, s, self.hparams["mode"])

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:  # noqa: D102
        x = batch["image"]
        widths = sandwich_widths(self.hparams["n_sampled"], self.hparams["s_min"], self.rng)
        step = self._moco_step if self.hparams["objective"] == "moco" else self._mae_step
        losses = step(x, widths)
        loss = torch.stack(losses).sum()
        bs = x.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log("train/loss_full", losses[0], batch_size=bs)
        self.log("train/loss_min", losses[1], batch_size=bs)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:  # noqa: D102
        if self.hparams["objective"] == "moco":
            self._momentum_update()

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:  # noqa: D102
        widths = [1.0, self.hparams["s_min"]]
        step = self._moco_step if self.hparams["objective"] == "moco" else self._mae_step
        losses = step(batch["image"], widths)
        bs = batch["image"].shape[0]
        self.log("val/loss_full", losses[0], batch_size=bs)
        self.log("val/loss_min", losses[1], batch_size=bs)

    def configure_optimizers(self) -> Any:  # noqa: D102
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"])
        total = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 10_000
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, warmup_cosine_schedule(min(self.hparams["warmup_steps"], total), total)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
