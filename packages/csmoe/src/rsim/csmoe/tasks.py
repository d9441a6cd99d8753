"""Lightning task: cross-sensor masked-autoencoder pretraining of CSMAE / CSMoE."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from rsim.csmoe.losses import masked_mse, nt_xent
from rsim.csmoe.models.backbone import CSMAE_BAND_ORDER, S2_CHANNELS, MaskingStrategy
from rsim.csmoe.models.convert import load_checkpoint_file, load_csmae_weights
from rsim.csmoe.models.csmae import CrossSensorMAE
from rsim.csmoe.retrieval import cross_sensor_retrieval
from torch import Tensor

__all__ = ["CSMoEPretrainTask", "channel_permutation"]


def channel_permutation(input_bands: Sequence[str] | str | None) -> list[int] | None:
    """Indices that reorder an input band order (names or an rsim-core preset) into CSMAE's order.

    Returns ``None`` when the input already is in CSMAE order.

    Raises:
        ValueError: If a CSMAE band is absent from the input (names the band).
    """
    if input_bands is None:
        return None
    if isinstance(input_bands, str):
        from rsim.core.data.nomenclature import band_presets

        input_bands = band_presets(input_bands)
    bands = list(input_bands)
    missing = [b for b in CSMAE_BAND_ORDER if b not in bands]
    if missing:
        raise ValueError(
            f"input band order {bands} lacks CSMAE band(s) {missing}; CSMAE needs {list(CSMAE_BAND_ORDER)}"
        )
    perm = [bands.index(b) for b in CSMAE_BAND_ORDER]
    return None if perm == list(range(len(bands))) else perm


class CSMoEPretrainTask(LightningModule):
    """Pretrain a CSMAE (``moe_layers: []``) or CSMoE (Soft-MoE blocks) model.

    Loss = UMR (same-sensor masked MSE, S1 and S2) + CMR (cross-sensor masked MSE, S2 from S1 and S1 from S2,
    at the positions the source sensor masked) + MIM (NT-Xent between pooled S1 and S2 features), unweighted
    sum as in CSMAE. Validation also logs CBIR scores within the validation set (all four sensor directions)
    and, for CSMoE, per-sensor expert usage.

    Args:
        vit_size: Encoder size (``tiny``/``small``/``base``/``large``).
        variant: CSMAE variant (``cecd``/``cesd``/``secd``/``sesd``).
        moe_layers: Soft-MoE placement: ``shared``, ``specific_second_half``, ``specific`` or block names.
        num_experts: Experts per Soft-MoE layer.
        slots_per_expert: Slots per expert.
        moe_normalize: Soft-MoE logit normalisation with a learnable scale.
        embed_dim: Override of the encoder width.
        num_heads: Override of the encoder heads.
        specific_depth: Override of the sensor-specific depth.
        shared_depth: Override of the shared depth.
        decoder_embed_dim: Decoder width.
        decoder_depth: Decoder depth.
        decoder_num_heads: Decoder heads.
        masking_strategy: ``random``, ``identical`` or ``disjoint``.
        mask_ratio: Fraction of masked patches.
        apply_umr_loss: Same-sensor reconstruction.
        apply_cmr_loss: Cross-sensor reconstruction.
        apply_mim_loss: Cross-sensor NT-Xent.
        mim_temperature: NT-Xent temperature.
        norm_pix_loss: Standardise target patches.
        input_bands: Band order of ``batch["image"]`` (names or an rsim-core preset such as ``S1S2``);
            reordered to CSMAE's order. ``None`` = already in CSMAE order.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        betas: AdamW betas.
        warmup_epochs: Linear warm-up length (fraction of training in epochs; per-step schedule).
        min_lr: Final learning rate of the cosine decay.
        init_weights: Optional CSMAE checkpoint loaded at construction (experts upcycled from dense MLPs).
        retrieval_k: k of the validation CBIR scores.
    """

    def __init__(
        self,
        vit_size: Literal["tiny", "small", "base", "large"] = "base",
        variant: Literal["cecd", "cesd", "secd", "sesd"] = "sesd",
        moe_layers: list[str] | None = None,
        num_experts: int = 8,
        slots_per_expert: int = 4,
        moe_normalize: bool = True,
        embed_dim: int | None = None,
        num_heads: int | None = None,
        specific_depth: int | None = None,
        shared_depth: int | None = None,
        decoder_embed_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        masking_strategy: MaskingStrategy = "random",
        mask_ratio: float = 0.5,
        apply_umr_loss: bool = True,
        apply_cmr_loss: bool = True,
        apply_mim_loss: bool = True,
        mim_temperature: float = 0.5,
        norm_pix_loss: bool = False,
        input_bands: list[str] | str | None = None,
        lr: float = 1e-4,
        weight_decay: float = 0.05,
        betas: tuple[float, float] = (0.9, 0.95),
        warmup_epochs: float = 10.0,
        min_lr: float = 0.0,
        init_weights: str | None = None,
        retrieval_k: int = 10,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must lie in (0, 1), got {mask_ratio}")
        if not (apply_umr_loss or apply_cmr_loss or apply_mim_loss):
            raise ValueError("at least one of apply_umr_loss, apply_cmr_loss, apply_mim_loss must be true")
        self.model = CrossSensorMAE(
            vit_size=vit_size,
            variant=variant,
            decoder_embed_dim=decoder_embed_dim,
            decoder_depth=decoder_depth,
            decoder_num_heads=decoder_num_heads,
            masking_strategy=masking_strategy,
            moe_layers=moe_layers or [],
            num_experts=num_experts,
            slots_per_expert=slots_per_expert,
            moe_normalize=moe_normalize,
            embed_dim=embed_dim,
            num_heads=num_heads,
            specific_depth=specific_depth,
            shared_depth=shared_depth,
        )
        self.perm = channel_permutation(input_bands)
        if init_weights:
            load_csmae_weights(self.model, load_checkpoint_file(init_weights))
        self._val_feats: dict[str, list[Tensor]] = {"s1": [], "s2": [], "label": []}

    @property
    def backbone(self) -> Any:
        """The encoder (a :class:`~rsim.csmoe.models.backbone.CrossSensorViT`)."""
        return self.model.backbone

    # -- data ---
    def images(self, batch: Any) -> Tensor:
        """The batch's ``[B, 12, H, W]`` image in CSMAE band order."""
        img = batch["image"] if isinstance(batch, dict) else batch
        if not isinstance(img, Tensor) or img.dim() != 4:
            raise ValueError("CSMoE batches must be a [B, C, H, W] tensor or a dict with key 'image'")
        if self.perm is not None:
            if img.shape[1] != len(self.perm):
                raise ValueError(f"batch has {img.shape[1]} channels, input_bands lists {len(self.perm)}")
            img = img[:, self.perm]
        if not torch.isfinite(img).all():
            raise ValueError("batch['image'] contains NaN or inf values (nodata not masked?)")
        return img

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Pooled ``{"s1", "s2"}`` features of an unmasked batch (CSMAE order input)."""
        return self.model.backbone(x)

    # -- losses ---
    def losses(self, imgs: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """All enabled loss terms and their sum (key ``loss``)."""
        hp: Any = self.hparams
        out = self.model(
            imgs, hp.mask_ratio, cross=hp.apply_cmr_loss, uni=hp.apply_umr_loss, generator=generator
        )
        p = self.model.backbone.patch_size
        target = {"s1": imgs[:, S2_CHANNELS:], "s2": imgs[:, :S2_CHANNELS]}
        terms: dict[str, Tensor] = {}
        pairs = []
        if hp.apply_umr_loss:
            pairs += [("s1", "s1"), ("s2", "s2")]
        if hp.apply_cmr_loss:
            pairs += [("s2", "s1"), ("s1", "s2")]
        for to, frm in pairs:
            key = f"{to}_from_{frm}"
            terms[f"rec_{key}"] = masked_mse(
                target[to], out[f"pred_{key}"], out[f"mask_{key}"], p, norm_pix_loss=hp.norm_pix_loss
            )
        if hp.apply_mim_loss:
            terms["mim"] = nt_xent(out["feats_s1"], out["feats_s2"], hp.mim_temperature)
        terms["loss"] = torch.stack(list(terms.values())).sum()
        return terms

    def _log_moe_usage(self, stage: str) -> None:
        usage = self.model.backbone.last_moe_usage
        for sensor, layers in usage.items():
            for layer, vec in layers.items():
                for i, v in enumerate(vec.tolist()):
                    self.log(f"{stage}/moe/{sensor}/{layer}/expert{i}", v, on_step=False, on_epoch=True)
        if "s1" in usage and "s2" in usage:
            for layer in usage["s1"].keys() & usage["s2"].keys():
                tv = 0.5 * (usage["s1"][layer] - usage["s2"][layer]).abs().sum()
                self.log(f"{stage}/moe/{layer}/s1_s2_usage_tv", tv, on_step=False, on_epoch=True)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:  # noqa: D102
        imgs = self.images(batch)
        terms = self.losses(imgs)
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, prog_bar=False, batch_size=imgs.shape[0])
        self.log("train_loss", terms["loss"], prog_bar=True, batch_size=imgs.shape[0])
        self._log_moe_usage("train")
        return terms["loss"]

    def validation_step(self, batch: Any, batch_idx: int) -> None:  # noqa: D102
        imgs = self.images(batch)
        gen = torch.Generator(device=imgs.device).manual_seed(batch_idx)  # same masks every epoch
        terms = self.losses(imgs, generator=gen)
        self.log_dict({f"val/{k}": v for k, v in terms.items()}, batch_size=imgs.shape[0])
        self.log("val_loss", terms["loss"], prog_bar=True, batch_size=imgs.shape[0])
        feats = self.model.backbone(imgs)
        self._log_moe_usage("val")
        if isinstance(batch, dict) and "label" in batch:
            self._val_feats["s1"].append(feats["s1"].detach().cpu())
            self._val_feats["s2"].append(feats["s2"].detach().cpu())
            self._val_feats["label"].append(batch["label"].detach().cpu())

    def on_validation_epoch_end(self) -> None:  # noqa: D102
        store, self._val_feats = self._val_feats, {"s1": [], "s2": [], "label": []}
        if not store["label"]:
            return
        labels = torch.cat(store["label"])
        if labels.shape[0] < 2:
            return
        feats = {s: torch.cat(store[s]) for s in ("s1", "s2")}
        scores = cross_sensor_retrieval(
            feats, labels, feats, labels, k=int(self.hparams["retrieval_k"]), exclude_self=True
        )
        for name, value in scores.items():
            self.log(f"val/cbir/{name}", value)

    # -- optimisation ---
    def configure_optimizers(self) -> Any:  # noqa: D102
        hp: Any = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay, betas=tuple(hp.betas))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        epochs = max(1, self.trainer.max_epochs or 1)
        warmup = int(hp.warmup_epochs * total / epochs)
        floor = hp.min_lr / hp.lr if hp.lr > 0 else 0.0

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            t = (step - warmup) / max(1, total - warmup)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
