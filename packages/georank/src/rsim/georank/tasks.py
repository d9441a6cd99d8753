"""SSL LightningModules (MoCo v2, BYOL, SimCLR, SimSiam, DINO) with GeoRank attached at the paper's points.

Heads, SSL losses, momentum updates and LARS come from ``lightly``. Every module trains on batches from the
data modules of :mod:`rsim.georank.data` (``views`` + ``coords``) and logs ``train/loss``, ``train/ssl`` and
``train/georank``. Total loss: ``(1 − α)·L_ssl + α·L_georank``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from lightly.loss import DINOLoss, NegativeCosineSimilarity, NTXentLoss
from lightly.models.modules.heads import (
    BYOLPredictionHead,
    BYOLProjectionHead,
    DINOProjectionHead,
    MoCoProjectionHead,
    SimCLRProjectionHead,
    SimSiamPredictionHead,
    SimSiamProjectionHead,
)
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.lars import LARS
from lightly.utils.scheduler import cosine_schedule
from lightning.pytorch import LightningModule
from rsim.core.io import atomic_path
from rsim.core.tasks import MultiLabelClassificationTask
from rsim.core.tasks.classification import warmup_cosine_schedule
from rsim.georank.baselines import GeographyMSE, SoftTargetNTXent, Tile2VecTriplet
from rsim.georank.losses import GeoRankLoss, combine
from rsim.georank.models import build_backbone
from torch import Tensor, nn

Optimizer = Literal["sgd", "lars", "adam", "adamw"]


@dataclass
class GeoRankConfig:
    """GeoRank settings (every constant of the loss).

    Attributes:
        enabled: Add the geographic term.
        kind: ``georank`` (the paper), or a baseline regulariser in its place: ``mse`` (GeographyMSE),
            ``soft_ntxent`` (soft-target NT-Xent) or ``tile2vec`` (triplets, positive ≤ 15 km, negative ≥ 50 km).
        alpha: Weight ``α`` of GeoRank in ``(1 − α)·L_ssl + α·L_georank``.
        temperature: Similarity temperature ``τ``.
        soft_rank_eps: Soft-rank regularisation strength ``ε``.
        min_dist_km: Smallest pair distance that counts.
        max_dist_km: Largest pair distance that counts.
        soft_margin: Soft margin ``m`` in rank positions.
        rank_loss: ``mse`` or ``l1``.
        distance: ``haversine`` or ``euclidean``.
        soft_rank_backend: ``torch`` or ``torchsort``.
    """

    enabled: bool = True
    kind: Literal["georank", "mse", "soft_ntxent", "tile2vec"] = "georank"
    alpha: float = 0.5
    temperature: float = 0.04
    soft_rank_eps: float = 1e-3
    min_dist_km: float = 0.0
    max_dist_km: float = 3000.0
    soft_margin: float = 1.0
    rank_loss: Literal["mse", "l1"] = "mse"
    distance: Literal["haversine", "euclidean"] = "haversine"
    soft_rank_backend: Literal["torch", "torchsort"] = "torch"

    def loss(self) -> nn.Module:
        """The configured loss module."""
        if self.kind == "mse":
            return GeographyMSE(temperature=self.temperature)
        if self.kind == "soft_ntxent":
            return SoftTargetNTXent(temperature=self.temperature, max_km=self.max_dist_km)
        if self.kind == "tile2vec":
            return Tile2VecTriplet()
        if self.kind != "georank":
            raise ValueError(
                f"unknown geographic loss kind {self.kind!r}; expected georank, mse, soft_ntxent, tile2vec"
            )
        return GeoRankLoss(
            temperature=self.temperature,
            soft_rank_eps=self.soft_rank_eps,
            min_dist_km=self.min_dist_km,
            max_dist_km=self.max_dist_km,
            soft_margin=self.soft_margin,
            rank_loss=self.rank_loss,
            distance=self.distance,
            soft_rank_backend=self.soft_rank_backend,
        )


class GeoSSLModule(LightningModule):
    """Base class: backbone, GeoRank, optimiser and the shared training step.

    Args:
        backbone: timm model name (``resnet18`` as in the paper).
        in_channels: Input bands.
        georank: GeoRank settings (``None``: defaults, enabled).
        optimizer: ``sgd``, ``lars``, ``adam`` or ``adamw``.
        lr: Peak learning rate.
        momentum: SGD/LARS momentum.
        weight_decay: Weight decay.
        warmup_steps: Linear warm-up steps before the cosine decay.
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        in_channels: int = 10,
        georank: GeoRankConfig | None = None,
        optimizer: Optimizer = "sgd",
        lr: float = 0.06,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
    ) -> None:
        super().__init__()
        self.georank_config = georank or GeoRankConfig()
        self.backbone, self.feature_dim = build_backbone(backbone, in_channels)
        self.georank = self.georank_config.loss() if self.georank_config.enabled else None
        self.optimizer_name = optimizer
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps
        self.in_channels = in_channels

    # -- to be implemented by each method --------------------------------------------------------------------
    def ssl_step(self, views: list[Tensor]) -> tuple[Tensor, list[tuple[Tensor, float]]]:
        """Return the SSL loss and the weighted embeddings GeoRank is applied to."""
        raise NotImplementedError

    def momentum_update(self) -> None:
        """Update momentum (EMA) networks; methods without one do nothing."""

    # -- shared ----------------------------------------------------------------------------------------------
    def features(self, x: Tensor) -> Tensor:
        """Pooled backbone features ``(B, feature_dim)`` (for kNN and probes)."""
        return self.backbone(x)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self.features(x)

    def georank_loss(self, embeddings: list[tuple[Tensor, float]], coords: Tensor) -> Tensor | None:
        """Weighted sum of GeoRank over the method's embeddings (``None`` when disabled)."""
        if self.georank is None:
            return None
        return sum((w * self.georank(z, coords) for z, w in embeddings), torch.zeros((), device=coords.device))

    def auxiliary_loss(self, batch: dict[str, Any], embeddings: list[tuple[Tensor, float]]) -> Tensor | None:
        """An extra pretext loss added to the total (GASSL's geo-classification); ``None`` by default."""
        return None

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:  # noqa: D102
        views = batch["views"]
        self.momentum_update()
        ssl, embeddings = self.ssl_step(views)
        geo = self.georank_loss(embeddings, batch["coords"])
        loss = combine(ssl, geo, self.georank_config.alpha)
        aux = self.auxiliary_loss(batch, embeddings)
        bs = views[0].shape[0]
        if aux is not None:
            loss = loss + aux
            self.log("train/aux", aux, prog_bar=True, batch_size=bs)
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log("train/ssl", ssl, batch_size=bs)
        if geo is not None:
            self.log("train/georank", geo, prog_bar=True, batch_size=bs)
        return loss

    def momentum_value(self, start: float, end: float) -> float:
        """Cosine schedule of the EMA momentum from ``start`` to ``end`` over the run."""
        total = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 1
        return cosine_schedule(self.global_step, max(total, 1), start, end)

    def configure_optimizers(self) -> Any:  # noqa: D102
        params = [p for p in self.parameters() if p.requires_grad]
        name = self.optimizer_name
        opt: torch.optim.Optimizer
        if name == "sgd":
            opt = torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        elif name == "lars":
            opt = LARS(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        elif name == "adam":
            opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        elif name == "adamw":
            opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        else:
            raise ValueError(f"unknown optimizer {name!r}; expected sgd, lars, adam or adamw")
        total = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 10_000
        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine_schedule(min(self.warmup_steps, total), total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def export_backbone(self, path: str | Path) -> Path:
        """Write the backbone weights as safetensors (loadable by ``MultiLabelClassificationTask(weights=...)``)."""
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in self.backbone.state_dict().items()}
        with atomic_path(path) as tmp:
            save_file(state, str(tmp))
        return Path(path)


class MoCoV2(GeoSSLModule):
    """MoCo v2: query/key encoders, NT-Xent with a memory bank; GeoRank on the query projection.

    Args:
        proj_hidden_dim: Projection hidden width.
        proj_dim: Projection output width.
        memory_bank_size: Negatives kept in the queue.
        ssl_temperature: NT-Xent temperature.
        momentum_start: EMA momentum at the start (cosine to ``momentum_end``).
        momentum_end: EMA momentum at the end.
        **kwargs: :class:`GeoSSLModule` arguments (default optimiser LARS lr 0.4, wd 1e-6).
    """

    def __init__(
        self,
        proj_hidden_dim: int = 2048,
        proj_dim: int = 128,
        memory_bank_size: int = 4092,
        ssl_temperature: float = 0.04,
        momentum_start: float = 0.996,
        momentum_end: float = 1.0,
        **kwargs: Any,
    ) -> None:
        kwargs = {"optimizer": "lars", "lr": 0.4, "weight_decay": 1e-6, **kwargs}
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.projection = MoCoProjectionHead(self.feature_dim, proj_hidden_dim, proj_dim)
        self.backbone_m = copy.deepcopy(self.backbone)
        self.projection_m = copy.deepcopy(self.projection)
        deactivate_requires_grad(self.backbone_m)
        deactivate_requires_grad(self.projection_m)
        self.criterion = NTXentLoss(temperature=ssl_temperature, memory_bank_size=(memory_bank_size, proj_dim))
        self.momentum_start, self.momentum_end = momentum_start, momentum_end

    def momentum_update(self) -> None:  # noqa: D102
        m = self.momentum_value(self.momentum_start, self.momentum_end)
        update_momentum(self.backbone, self.backbone_m, m)
        update_momentum(self.projection, self.projection_m, m)

    def ssl_step(self, views: list[Tensor]) -> tuple[Tensor, list[tuple[Tensor, float]]]:  # noqa: D102
        query = self.projection(self.backbone(views[0]))
        with torch.no_grad():
            key = self.projection_m(self.backbone_m(views[1]))
        return self.criterion(query, key), [(query, 1.0)]


class GASSL(MoCoV2):
    """GASSL (Ayush et al., ICCV 2021): MoCo v2 + temporal positives + a geo-location classification head.

    Every training location gets a k-means cluster id of its coordinates (:func:`rsim.georank.geo.geo_clusters`,
    computed once at the start of ``fit`` from ``datamodule.train_coordinates()``); a linear head on the query
    projection (128 → k) classifies it with cross-entropy. Total loss:
    ``combine(L_moco, L_georank, α) + geo_weight · L_geo``; GeoRank is off unless enabled. Temporal positives come
    from the data module (``temporal_views: true``: two acquisitions of a location as the MoCo pair).

    Args:
        num_clusters: K-means clusters ``k`` (the GeoRank code: 10).
        geo_weight: Weight of the geo-classification loss (GASSL: 1, an unweighted sum).
        cluster_seed: Seed of the k-means initialisation.
        **kwargs: :class:`MoCoV2` arguments; ``georank`` defaults to disabled.
    """

    cluster_of: Tensor

    def __init__(self, num_clusters: int = 10, geo_weight: float = 1.0, cluster_seed: int = 0, **kwargs: Any) -> None:
        kwargs.setdefault("georank", GeoRankConfig(enabled=False))
        super().__init__(**kwargs)
        self.save_hyperparameters()
        if num_clusters < 1:
            raise ValueError(f"GASSL needs num_clusters >= 1, got {num_clusters}")
        self.num_clusters, self.geo_weight, self.cluster_seed = num_clusters, geo_weight, cluster_seed
        self.geo_head = nn.Linear(int(self.hparams["proj_dim"]), num_clusters)
        self.register_buffer("cluster_of", torch.zeros(0, dtype=torch.long), persistent=False)

    def set_clusters(self, coords: Any) -> Tensor:
        """Cluster the training locations ``(N, 2)`` (lat, lon) and keep the id of every dataset index."""
        from rsim.georank.geo import geo_clusters

        labels = torch.as_tensor(geo_clusters(coords, self.num_clusters, self.cluster_seed), dtype=torch.long)
        self.cluster_of = labels.to(self.geo_head.weight.device)
        return self.cluster_of

    def on_fit_start(self) -> None:  # noqa: D102
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None or not hasattr(dm, "train_coordinates"):
            raise ValueError("GASSL needs a data module with train_coordinates() (SSL4EO-S12 or BigEarthNet geo)")
        self.set_clusters(dm.train_coordinates())

    def auxiliary_loss(self, batch: dict[str, Any], embeddings: list[tuple[Tensor, float]]) -> Tensor:  # noqa: D102
        if self.cluster_of.numel() == 0:
            raise RuntimeError("GASSL clusters are not set: call set_clusters(coords) or train through Trainer.fit")
        index = batch["index"].to(self.cluster_of.device).long()
        if int(index.max()) >= self.cluster_of.numel():
            raise IndexError(f"batch index {int(index.max())} beyond the {self.cluster_of.numel()} clustered locations")
        target = self.cluster_of[index]
        logits = self.geo_head(embeddings[0][0])
        loss = nn.functional.cross_entropy(logits.float(), target)
        if self._trainer is not None and self._trainer.training:
            self.log("train/geo_acc", (logits.argmax(1) == target).float().mean(), batch_size=target.shape[0])
        return self.geo_weight * loss


class BYOL(GeoSSLModule):
    """BYOL: online projection + prediction, momentum target, symmetric negative cosine.

    GeoRank is applied to the online prediction of view 1.

    Args:
        proj_hidden_dim: Projection hidden width.
        proj_dim: Projection output width.
        pred_hidden_dim: Predictor hidden width.
        momentum_start: EMA momentum at the start.
        momentum_end: EMA momentum at the end.
        **kwargs: :class:`GeoSSLModule` arguments (default SGD lr 0.06).
    """

    def __init__(
        self,
        proj_hidden_dim: int = 1024,
        proj_dim: int = 256,
        pred_hidden_dim: int = 1024,
        momentum_start: float = 0.99,
        momentum_end: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.projection = BYOLProjectionHead(self.feature_dim, proj_hidden_dim, proj_dim)
        self.prediction = BYOLPredictionHead(proj_dim, pred_hidden_dim, proj_dim)
        self.backbone_m = copy.deepcopy(self.backbone)
        self.projection_m = copy.deepcopy(self.projection)
        deactivate_requires_grad(self.backbone_m)
        deactivate_requires_grad(self.projection_m)
        self.criterion = NegativeCosineSimilarity()
        self.momentum_start, self.momentum_end = momentum_start, momentum_end

    def momentum_update(self) -> None:  # noqa: D102
        m = self.momentum_value(self.momentum_start, self.momentum_end)
        update_momentum(self.backbone, self.backbone_m, m)
        update_momentum(self.projection, self.projection_m, m)

    def ssl_step(self, views: list[Tensor]) -> tuple[Tensor, list[tuple[Tensor, float]]]:  # noqa: D102
        p0 = self.prediction(self.projection(self.backbone(views[0])))
        p1 = self.prediction(self.projection(self.backbone(views[1])))
        with torch.no_grad():
            z0 = self.projection_m(self.backbone_m(views[0]))
            z1 = self.projection_m(self.backbone_m(views[1]))
        loss = 0.5 * (self.criterion(p0, z1) + self.criterion(p1, z0))
        return loss, [(p0, 1.0)]


class SimCLR(GeoSSLModule):
    """SimCLR: NT-Xent between two projected views; GeoRank on the view-1 projection.

    Args:
        proj_hidden_dim: Projection hidden width.
        proj_dim: Projection output width.
        ssl_temperature: NT-Xent temperature.
        **kwargs: :class:`GeoSSLModule` arguments (default SGD lr 0.06).
    """

    def __init__(
        self, proj_hidden_dim: int = 512, proj_dim: int = 128, ssl_temperature: float = 0.5, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.projection = SimCLRProjectionHead(self.feature_dim, proj_hidden_dim, proj_dim)
        self.criterion = NTXentLoss(temperature=ssl_temperature)

    def ssl_step(self, views: list[Tensor]) -> tuple[Tensor, list[tuple[Tensor, float]]]:  # noqa: D102
        z0 = self.projection(self.backbone(views[0]))
        z1 = self.projection(self.backbone(views[1]))
        return self.criterion(z0, z1), [(z0, 1.0)]


class SimSiam(GeoSSLModule):
    """SimSiam: projection + predictor with stop-gradient; GeoRank on the view-1 projection.

    Args:
        proj_hidden_dim: Projection hidden width.
        proj_dim: Projection output width.
        pred_hidden_dim: Predictor hidden width.
        **kwargs: :class:`GeoSSLModule` arguments (default SGD lr 0.06).
    """

    def __init__(
        self, proj_hidden_dim: int = 2048, proj_dim: int = 2048, pred_hidden_dim: int = 512, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.projection = SimSiamProjectionHead(self.feature_dim, proj_hidden_dim, proj_dim)
        self.prediction = SimSiamPredictionHead(proj_dim, pred_hidden_dim, proj_dim)
        self.criterion = NegativeCosineSimilarity()

    def ssl_step(self, views: list[Tensor]) -> tuple[Tensor, list[tuple[Tensor, float]]]:  # noqa: D102
        z0 = self.projection(self.backbone(views[0]))
        z1 = self.projection(self.backbone(views[1]))
        p0, p1 = self.prediction(z0), self.prediction(z1)
        loss = 0.5 * (self.criterion(p0, z1.detach()) + self.criterion(p1, z0.detach()))
        return loss, [(z0, 1.0)]


class DINO(GeoSSLModule):
    """DINO: student/teacher heads over global and local views; GeoRank on 0.5·teacher + 0.5·student first view.

    The teacher term carries no gradient (the teacher is an EMA); it enters the logged value as in the original.

    Args:
        head_hidden_dim: Head hidden width.
        bottleneck_dim: Head bottleneck width.
        output_dim: Prototypes.
        freeze_last_layer: Epochs with a frozen last head layer.
        warmup_teacher_temp_epochs: Teacher-temperature warm-up epochs.
        num_global: Global views among the batch's views (the rest are local).
        momentum_start: EMA momentum at the start.
        momentum_end: EMA momentum at the end.
        **kwargs: :class:`GeoSSLModule` arguments (default Adam lr 1e-3).
    """

    def __init__(
        self,
        head_hidden_dim: int = 512,
        bottleneck_dim: int = 64,
        output_dim: int = 2048,
        freeze_last_layer: int = 1,
        warmup_teacher_temp_epochs: int = 5,
        num_global: int = 2,
        momentum_start: float = 0.996,
        momentum_end: float = 1.0,
        **kwargs: Any,
    ) -> None:
        kwargs = {"optimizer": "adam", "lr": 1e-3, **kwargs}
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.student_head = DINOProjectionHead(
            self.feature_dim, head_hidden_dim, bottleneck_dim, output_dim, freeze_last_layer=freeze_last_layer
        )
        self.teacher_backbone = copy.deepcopy(self.backbone)
        self.teacher_head = DINOProjectionHead(self.feature_dim, head_hidden_dim, bottleneck_dim, output_dim)
        deactivate_requires_grad(self.teacher_backbone)
        deactivate_requires_grad(self.teacher_head)
        self.criterion = DINOLoss(output_dim=output_dim, warmup_teacher_temp_epochs=warmup_teacher_temp_epochs)
        self.num_global = num_global
        self.momentum_start, self.momentum_end = momentum_start, momentum_end

    def momentum_update(self) -> None:  # noqa: D102
        m = self.momentum_value(self.momentum_start, self.momentum_end)
        update_momentum(self.backbone, self.teacher_backbone, m)
        update_momentum(self.student_head, self.teacher_head, m)

    def ssl_step(self, views: list[Tensor]) -> tuple[Tensor, list[tuple[Tensor, float]]]:  # noqa: D102
        with torch.no_grad():
            teacher = [self.teacher_head(self.teacher_backbone(v)) for v in views[: self.num_global]]
        student = [self.student_head(self.backbone(v)) for v in views]
        loss = self.criterion(teacher, student, epoch=self.current_epoch)
        return loss, [(teacher[0], 0.5), (student[0], 0.5)]

    def on_after_backward(self) -> None:  # noqa: D102
        self.student_head.cancel_last_layer_gradients(current_epoch=self.current_epoch)


class SingleLabelClassificationTask(MultiLabelClassificationTask):
    """Single-label (e.g. EuroSAT) linear probe / fine-tuning: rsim-core's task with cross-entropy and accuracy.

    Everything else (timm backbone, local safetensors ``weights`` from ``georank export``, ``freeze_backbone``,
    AdamW, warm-up + cosine) is :class:`rsim.core.tasks.MultiLabelClassificationTask`. Logs ``{val,test}/acc``
    (overall accuracy, the paper's metric) and ``{val,test}/acc_macro`` (mean per-class accuracy). Batches are
    ``{"image": (B, C, H, W), "label": (B,) int64}``.

    Args:
        num_classes: Classes (EuroSAT: 10).
        **kwargs: :class:`rsim.core.tasks.MultiLabelClassificationTask` arguments.
    """

    def __init__(self, num_classes: int = 10, **kwargs: Any) -> None:
        from torchmetrics import MetricCollection
        from torchmetrics.classification import MulticlassAccuracy

        super().__init__(num_classes=num_classes, **kwargs)
        self.loss = nn.CrossEntropyLoss()  # type: ignore[assignment]

        def metrics(prefix: str) -> MetricCollection:
            return MetricCollection(
                {"acc": MulticlassAccuracy(num_classes, average="micro"),
                 "acc_macro": MulticlassAccuracy(num_classes, average="macro")},
                prefix=prefix,
            )  # fmt: skip

        self.val_metrics = metrics("val/")
        self.test_metrics = metrics("test/")

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:  # noqa: D102
        loss = self.loss(self(batch["image"]), batch["label"].long())
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["label"].shape[0])
        return loss

    def _eval_step(self, batch: dict[str, Tensor], metrics: Any, stage: str) -> None:
        logits = self(batch["image"])
        label = batch["label"].long()
        metrics.update(logits, label)
        self.log(f"{stage}/loss", self.loss(logits, label), prog_bar=True, batch_size=label.shape[0])

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:  # noqa: D102
        return {"probabilities": torch.softmax(self(batch["image"]), dim=1), "index": batch["index"]}


METHODS: dict[str, type[GeoSSLModule]] = {
    "moco": MoCoV2,
    "gassl": GASSL,
    "byol": BYOL,
    "simclr": SimCLR,
    "simsiam": SimSiam,
    "dino": DINO,
}


__all__ = [
    "BYOL",
    "DINO",
    "GASSL",
    "METHODS",
    "GeoRankConfig",
    "GeoSSLModule",
    "MoCoV2",
    "SimCLR",
    "SimSiam",
    "SingleLabelClassificationTask",
]
