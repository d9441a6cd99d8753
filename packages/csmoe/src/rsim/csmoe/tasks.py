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

__all__ = [
    "CSMoEPretrainTask",
    "CSMoEProbeTask",
    "CSMoESegmentationTask",
    "batch_images",
    "channel_permutation",
    "clc_lookup",
]


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


def batch_images(batch: Any, perm: list[int] | None) -> Tensor:
    """Take ``batch["image"]`` (or a bare tensor), reorder its channels by ``perm`` and check it is finite.

    Raises:
        ValueError: On a wrong shape, a channel count that does not match ``perm``, or NaN/inf values.
    """
    img = batch["image"] if isinstance(batch, dict) else batch
    if not isinstance(img, Tensor) or img.dim() != 4:
        raise ValueError("CSMoE batches must be a [B, C, H, W] tensor or a dict with key 'image'")
    if perm is not None:
        if img.shape[1] != len(perm):
            raise ValueError(f"batch has {img.shape[1]} channels, input_bands lists {len(perm)}")
        img = img[:, perm]
    if not torch.isfinite(img).all():
        raise ValueError("batch['image'] contains NaN or inf values (nodata not masked?)")
    return img


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
        return batch_images(batch, self.perm)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Pooled ``{"s1", "s2"}`` features of an unmasked batch (CSMAE order input)."""
        return self.model.backbone(x)

    # -- losses ---
    def losses(self, imgs: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """All enabled loss terms and their sum (key ``loss``)."""
        hp: Any = self.hparams
        out = self.model(imgs, hp.mask_ratio, cross=hp.apply_cmr_loss, uni=hp.apply_umr_loss, generator=generator)
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


class CSMoEProbeTask(LightningModule):
    """Multi-label scene classification on a CSMAE / CSMoE encoder: linear probe or fine-tuning.

    The head is a linear layer on the pooled features of ``features`` (``s1``, ``s2`` or ``concat`` of both);
    BCE-with-logits; mAP and F1 (micro/macro) from :func:`rsim.core.metrics.multilabel_metrics`.

    Args:
        vit_size: Encoder size.
        variant: CSMAE variant.
        moe_layers: Soft-MoE placement of the encoder.
        num_experts: Experts per Soft-MoE layer.
        slots_per_expert: Slots per expert.
        embed_dim: Override of the encoder width.
        num_heads: Override of the encoder heads.
        specific_depth: Override of the sensor-specific depth.
        shared_depth: Override of the shared depth.
        weights: Encoder weights: a ``CSMoEPretrainTask`` checkpoint, an ``import-weights`` file or an original
            CSMAE checkpoint.
        freeze_backbone: Linear probe (only the head trains) when true, fine-tuning otherwise.
        features: Which pooled features feed the head.
        num_classes: Labels (19 for BigEarthNet).
        input_bands: Band order of ``batch["image"]`` (see :class:`CSMoEPretrainTask`).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
    """

    def __init__(
        self,
        vit_size: Literal["tiny", "small", "base", "large"] = "base",
        variant: Literal["cecd", "cesd", "secd", "sesd"] = "sesd",
        moe_layers: list[str] | None = None,
        num_experts: int = 8,
        slots_per_expert: int = 4,
        embed_dim: int | None = None,
        num_heads: int | None = None,
        specific_depth: int | None = None,
        shared_depth: int | None = None,
        weights: str | None = None,
        freeze_backbone: bool = True,
        features: Literal["s1", "s2", "concat"] = "concat",
        num_classes: int = 19,
        input_bands: list[str] | str | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        from rsim.core.metrics import multilabel_metrics
        from rsim.csmoe.models.csmae import build_backbone

        if features not in ("s1", "s2", "concat"):
            raise ValueError(f"features must be 's1', 's2' or 'concat', got {features!r}")
        self.backbone = build_backbone(
            vit_size,
            variant,
            embed_dim=embed_dim,
            num_heads=num_heads,
            specific_depth=specific_depth,
            shared_depth=shared_depth,
            moe_layers=moe_layers or [],
            num_experts=num_experts,
            slots_per_expert=slots_per_expert,
        )
        if weights:
            load_csmae_weights(self.backbone, load_checkpoint_file(weights), strict=True)
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            self.backbone.requires_grad_(False)
        width = self.backbone.embed_dim * (2 if features == "concat" else 1)
        self.head = torch.nn.Linear(width, num_classes)
        self.perm = channel_permutation(input_bands)
        self.loss = torch.nn.BCEWithLogitsLoss()
        self.val_metrics = multilabel_metrics(num_classes, prefix="val/")
        self.test_metrics = multilabel_metrics(num_classes, prefix="test/")

    def images(self, batch: Any) -> Tensor:
        """The batch's image in CSMAE band order."""
        return batch_images(batch, self.perm)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, num_classes]`` of a CSMAE-order image batch."""
        if self.freeze_backbone:
            self.backbone.eval()
            with torch.no_grad():
                feats = self.backbone(x)
        else:
            feats = self.backbone(x)
        which = self.hparams["features"]
        z = torch.cat([feats["s1"], feats["s2"]], dim=1) if which == "concat" else feats[which]
        return self.head(z)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:  # noqa: D102
        loss = self.loss(self(self.images(batch)), batch["label"].float())
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["label"].shape[0])
        return loss

    def _eval(self, batch: Any, metrics: Any, stage: str) -> None:
        logits = self(self.images(batch))
        self.log(f"{stage}/loss", self.loss(logits, batch["label"].float()), batch_size=logits.shape[0])
        metrics.update(logits, batch["label"].int())

    def validation_step(self, batch: Any, batch_idx: int) -> None:  # noqa: D102
        self._eval(batch, self.val_metrics, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:  # noqa: D102
        self._eval(batch, self.test_metrics, "test")

    def on_validation_epoch_end(self) -> None:  # noqa: D102
        self.log_dict(self.val_metrics.compute())
        self.val_metrics.reset()

    def on_test_epoch_end(self) -> None:  # noqa: D102
        self.log_dict(self.test_metrics.compute())
        self.test_metrics.reset()

    def configure_optimizers(self) -> Any:  # noqa: D102
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"])


def clc_lookup(ignore_index: int = 255) -> Tensor:
    """Lookup table CLC Level-3 code (0..999) → 19-class index (CLC order), ``ignore_index`` for nodata/UNLABELED."""
    from rsim.core.data.nomenclature import BEN19_LABELS, clc_code_to_19

    index = {name: i for i, name in enumerate(BEN19_LABELS)}
    table = torch.full((1000,), ignore_index, dtype=torch.long)
    for code, name in clc_code_to_19().items():
        if name in index:
            table[code] = index[name]
    return table


class CSMoESegmentationTask(LightningModule):
    """Semantic segmentation of reBEN reference maps (19 classes) on a CSMAE / CSMoE encoder.

    Head [assumption; the paper's head is unknown]: the 8×8 patch tokens of the chosen sensor(s) (concatenated
    for ``concat``) go through a 1×1 convolution to class scores, bilinearly upsampled to the image size (a
    "linear" segmentation head). Targets are CLC codes mapped to the 19 classes; nodata and UNLABELED codes are
    ignored. Metrics: :class:`rsim.core.metrics.SegmentationMetrics` (OA, mIoU, F1).

    Args:
        vit_size: Encoder size.
        variant: CSMAE variant.
        moe_layers: Soft-MoE placement of the encoder.
        num_experts: Experts per Soft-MoE layer.
        slots_per_expert: Slots per expert.
        embed_dim: Override of the encoder width.
        num_heads: Override of the encoder heads.
        specific_depth: Override of the sensor-specific depth.
        shared_depth: Override of the shared depth.
        weights: Encoder weights (pretraining checkpoint, ``import-weights`` file or original CSMAE checkpoint).
        freeze_backbone: Train only the head.
        features: ``s1``, ``s2`` or ``concat`` token maps.
        num_classes: Classes (19).
        input_bands: Band order of ``batch["image"]``.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
    """

    ignore_index = 255

    def __init__(
        self,
        vit_size: Literal["tiny", "small", "base", "large"] = "base",
        variant: Literal["cecd", "cesd", "secd", "sesd"] = "sesd",
        moe_layers: list[str] | None = None,
        num_experts: int = 8,
        slots_per_expert: int = 4,
        embed_dim: int | None = None,
        num_heads: int | None = None,
        specific_depth: int | None = None,
        shared_depth: int | None = None,
        weights: str | None = None,
        freeze_backbone: bool = True,
        features: Literal["s1", "s2", "concat"] = "concat",
        num_classes: int = 19,
        input_bands: list[str] | str | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        from rsim.core.metrics import SegmentationMetrics
        from rsim.csmoe.models.csmae import build_backbone

        if features not in ("s1", "s2", "concat"):
            raise ValueError(f"features must be 's1', 's2' or 'concat', got {features!r}")
        self.backbone = build_backbone(
            vit_size,
            variant,
            embed_dim=embed_dim,
            num_heads=num_heads,
            specific_depth=specific_depth,
            shared_depth=shared_depth,
            moe_layers=moe_layers or [],
            num_experts=num_experts,
            slots_per_expert=slots_per_expert,
        )
        if weights:
            load_csmae_weights(self.backbone, load_checkpoint_file(weights), strict=True)
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            self.backbone.requires_grad_(False)
        width = self.backbone.embed_dim * (2 if features == "concat" else 1)
        self.head = torch.nn.Conv2d(width, num_classes, kernel_size=1)
        self.perm = channel_permutation(input_bands)
        self.register_buffer("lookup", clc_lookup(self.ignore_index), persistent=False)
        self.loss = torch.nn.CrossEntropyLoss(ignore_index=self.ignore_index)
        self.val_metrics = SegmentationMetrics(num_classes, ignore_index=self.ignore_index)
        self.test_metrics = SegmentationMetrics(num_classes, ignore_index=self.ignore_index)

    def setup(self, stage: str) -> None:  # noqa: D102
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and getattr(dm, "augmenter", None) is not None:
            raise ValueError(
                "segmentation needs data.init_args.augment: false (the data module augments the image but not "
                "the reference map)"
            )
        if dm is not None and not getattr(dm, "reference_maps", True):
            raise ValueError("segmentation needs data.init_args.reference_maps: true")

    def targets(self, batch: Any) -> Tensor:
        """19-class index map ``[B, H, W]`` of ``batch["reference_map"]`` (ignored pixels = 255)."""
        if not isinstance(batch, dict) or "reference_map" not in batch:
            raise KeyError("segmentation batches need the key 'reference_map' (data.init_args.reference_maps: true)")
        codes = batch["reference_map"].long()
        if codes.dim() == 4:
            codes = codes[:, 0]
        lookup: Tensor = self.lookup  # type: ignore[assignment]
        if codes.min() < 0 or codes.max() >= lookup.numel():
            raise ValueError(f"reference map codes out of the CLC range 0..999 (min {codes.min()}, max {codes.max()})")
        return lookup[codes]

    def forward(self, x: Tensor) -> Tensor:
        """Class scores ``[B, K, H, W]`` of a CSMAE-order image batch."""
        bb = self.backbone
        s1, s2 = bb.split_sensors(x)
        which = self.hparams["features"]
        sensors: list[Literal["s1", "s2"]] = ["s1", "s2"] if which == "concat" else [which]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_backbone):
            if self.freeze_backbone:
                bb.eval()
            maps = []
            for s in sensors:
                tokens = bb.encode_sensor(s1 if s == "s1" else s2, s).tokens[:, 1:]
                b, _, d = tokens.shape
                maps.append(tokens.transpose(1, 2).reshape(b, d, bb.grid, bb.grid))
        logits = self.head(torch.cat(maps, dim=1))
        return torch.nn.functional.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:  # noqa: D102
        loss = self.loss(self(batch_images(batch, self.perm)), self.targets(batch))
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["reference_map"].shape[0])
        return loss

    def _eval(self, batch: Any, metrics: Any, stage: str) -> None:
        logits = self(batch_images(batch, self.perm))
        target = self.targets(batch)
        self.log(f"{stage}/loss", self.loss(logits, target), batch_size=logits.shape[0])
        metrics.update(logits, target)

    def validation_step(self, batch: Any, batch_idx: int) -> None:  # noqa: D102
        self._eval(batch, self.val_metrics, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:  # noqa: D102
        self._eval(batch, self.test_metrics, "test")

    def _log_metrics(self, metrics: Any, stage: str) -> None:
        for k, v in metrics.compute().items():
            if v.numel() == 1:
                self.log(f"{stage}/{k}", v)
        metrics.reset()

    def on_validation_epoch_end(self) -> None:  # noqa: D102
        self._log_metrics(self.val_metrics, "val")

    def on_test_epoch_end(self) -> None:  # noqa: D102
        self._log_metrics(self.test_metrics, "test")

    def configure_optimizers(self) -> Any:  # noqa: D102
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"])
