"""LightningModules: NAR (+ELR, +SAT) and the BCE, ELR, SAT and ASL baselines on rsim-core's multi-label task.

All per-sample state (noisy start labels, NAR labels and weights, ELR and SAT targets) lives in registered buffers of
shape ``(N_train, C)`` indexed by ``batch["index"]``: it stays on the device, follows ``.to()``, and is saved in
checkpoints. The buffers are sized in ``setup`` from the data module (before Lightning restores a checkpoint) and
resized to the stored shape when a checkpoint is loaded outside a trainer.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from rsim.core.metrics import multilabel_per_class
from rsim.core.tasks import MultiLabelClassificationTask
from rsim.nar.models.losses import LossNorm, asl_loss, elr_regularizer, weighted_bce
from rsim.nar.nrl import NRLConfig, correction_stats, nrl_update
from torch import Tensor

__all__ = ["METHODS", "Method", "NoisyLabelTask", "paper_schedule"]

Method = Literal["bce", "elr", "sat", "asl", "nar", "nar_elr", "nar_sat"]
METHODS: tuple[str, ...] = ("bce", "elr", "sat", "asl", "nar", "nar_elr", "nar_sat")
STATE_BUFFERS = ("y_start", "clean_labels", "nar_labels", "nar_weights", "elr_target", "sat_target")


def paper_schedule(warmup_steps: int, total_steps: int, min_factor: float = 0.1) -> Any:
    """LR factor of the original recipe: linear warm-up from ``min_factor`` to 1, then cosine down to ``min_factor``."""

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return min_factor + (1.0 - min_factor) * step / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


class NoisyLabelTask(MultiLabelClassificationTask):
    """Multi-label training under label noise: NAR label handling, ELR, SAT, ASL and BCE.

    Args:
        method: ``bce``, ``elr``, ``sat``, ``asl``, ``nar`` (label handling + weighted BCE), ``nar_elr`` (the
            paper's method) or ``nar_sat``.
        backbone: timm model name (``pretrained=False``).
        in_channels: Input channels.
        num_classes: Number of labels.
        lr: Peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: Linear warm-up steps; ``None`` = the original rule (10,000 if the run has more steps, else 100).
        min_lr_factor: Warm-up start and cosine floor as a fraction of ``lr`` (original: 0.1).
        drop_rate: Dropout before the classifier.
        drop_path_rate: Stochastic depth.
        weights: Local weights file for the backbone.
        backbone_kwargs: Extra ``timm.create_model`` arguments (e.g. ``{"layers": [1, 1, 1, 1]}``).
        p1_zero: Flip observed 0 → 1 above this probability.
        p2_zero: Deactivate observed 0 above this (``"dynamic"`` = slope · prevalence + intercept).
        p1_one: Flip observed 1 → 0 below this (``"cw"`` = prevalence/3 − 0.05).
        p2_one: Deactivate observed 1 below this (``"cw"`` = prevalence − 0.05).
        class_min_add: Prevalence gate of 1 → 0 flips.
        class_min_sub: Prevalence gate of 0 → 1 flips.
        dynamic_slope: Slope of the dynamic ``p2_zero``.
        dynamic_intercept: Intercept of the dynamic ``p2_zero``.
        warm_start_epochs: Epochs of plain training before the first label-handling decision is used.
        nrl_prob_source: ``train`` (the epoch's training-pass probabilities, upstream) or ``eval`` (an extra
            eval-mode pass over the training split, without augmentation).
        elr_lambda: ELR weight λ.
        elr_beta: ELR target momentum β.
        elr_update_masked: Update the ELR target of deactivated entries too (upstream: yes).
        loss_norm: ``all_entries`` (divide by B·C, upstream) or ``active_entries`` (divide by Σw).
        sat_momentum: SAT target momentum.
        sat_warmup_epochs: Epochs before SAT starts updating its targets.
        asl_gamma_neg: ASL γ−.
        asl_gamma_pos: ASL γ+.
        asl_clip: ASL probability margin for negatives.
        write_diagnostics: Write ``nar_diagnostics.csv``/``.png`` to the log folder when fitting ends.
    """

    y_start: Tensor
    clean_labels: Tensor
    nar_labels: Tensor
    nar_weights: Tensor
    elr_target: Tensor
    sat_target: Tensor
    epoch_probs: Tensor
    seen: Tensor

    def __init__(
        self,
        method: Method = "nar_elr",
        backbone: str = "resnet18",
        in_channels: int = 3,
        num_classes: int = 17,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_steps: int | None = None,
        min_lr_factor: float = 0.1,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        weights: str | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        p1_zero: float = 0.94,
        p2_zero: float | Literal["dynamic"] = 0.54,
        p1_one: float | Literal["cw"] = 0.0,
        p2_one: float | Literal["cw"] = 0.20,
        class_min_add: float = 0.2,
        class_min_sub: float = 0.0,
        dynamic_slope: float = 0.2,
        dynamic_intercept: float = 0.5,
        warm_start_epochs: int = 0,
        nrl_prob_source: Literal["train", "eval"] = "train",
        elr_lambda: float = 3.0,
        elr_beta: float = 0.7,
        elr_update_masked: bool = True,
        loss_norm: LossNorm = "all_entries",
        sat_momentum: float = 0.9,
        sat_warmup_epochs: int = 5,
        asl_gamma_neg: float = 4.0,
        asl_gamma_pos: float = 1.0,
        asl_clip: float = 0.05,
        write_diagnostics: bool = True,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if nrl_prob_source not in ("train", "eval"):
            raise ValueError(f"nrl_prob_source must be 'train' or 'eval', got {nrl_prob_source!r}")
        if loss_norm not in ("all_entries", "active_entries"):
            raise ValueError(f"loss_norm must be 'all_entries' or 'active_entries', got {loss_norm!r}")
        for name, value in (("elr_beta", elr_beta), ("sat_momentum", sat_momentum), ("min_lr_factor", min_lr_factor)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        self.nrl_config = NRLConfig(
            p1_zero=p1_zero,
            p2_zero=p2_zero,
            p1_one=p1_one,
            p2_one=p2_one,
            class_min_add=class_min_add,
            class_min_sub=class_min_sub,
            dynamic_slope=dynamic_slope,
            dynamic_intercept=dynamic_intercept,
        )
        super().__init__(
            backbone=backbone,
            in_channels=in_channels,
            num_classes=num_classes,
            lr=lr,
            weight_decay=weight_decay,
            warmup_steps=0 if warmup_steps is None else warmup_steps,
            drop_rate=drop_rate,
            drop_path_rate=drop_path_rate,
            weights=weights,
            backbone_kwargs=backbone_kwargs,
        )
        self.save_hyperparameters()
        self.method = method
        self.uses_nar = method.startswith("nar")
        self.test_per_class = multilabel_per_class(num_classes, prefix="test/")
        empty = torch.zeros(0, num_classes)
        for name in STATE_BUFFERS:
            self.register_buffer(name, empty.clone())
        self.register_buffer("epoch_probs", empty.clone(), persistent=False)
        self.register_buffer("seen", torch.zeros(0, dtype=torch.bool), persistent=False)
        self.correction_history: list[dict[str, float]] = []
        self.class_names: list[str] = [f"class_{c}" for c in range(num_classes)]

    # -- per-sample state -------------------------------------------------------------------------------------
    def init_label_state(self, noisy: Tensor | np.ndarray, clean: Tensor | np.ndarray | None = None) -> None:
        """Size every buffer for ``noisy`` ``(N, C)`` and reset it (labels = noisy, weights 1, ELR targets 0)."""
        y = torch.as_tensor(np.asarray(noisy), dtype=torch.float32, device=self.device)
        if y.ndim != 2 or y.shape[1] != self.hparams["num_classes"]:
            raise ValueError(
                f"training labels have shape {tuple(y.shape)}, expected (N, {self.hparams['num_classes']})"
            )
        self.y_start = y.clone()
        self.clean_labels = (
            torch.as_tensor(np.asarray(clean), dtype=torch.float32, device=self.device)
            if clean is not None
            else torch.zeros(0, y.shape[1], device=self.device)
        )
        self.nar_labels = y.clone()
        self.nar_weights = torch.ones_like(y)
        self.elr_target = torch.zeros_like(y)
        self.sat_target = y.clone()
        self.epoch_probs = torch.zeros_like(y)
        self.seen = torch.zeros(y.shape[0], dtype=torch.bool, device=self.device)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        for name in STATE_BUFFERS:
            stored = state_dict.get(prefix + name)
            if stored is not None and stored.shape != getattr(self, name).shape:
                setattr(self, name, torch.zeros_like(stored, device=self.device))
        n = state_dict.get(prefix + "y_start")
        if n is not None and self.epoch_probs.shape != n.shape:
            self.epoch_probs = torch.zeros_like(n, device=self.device)
            self.seen = torch.zeros(n.shape[0], dtype=torch.bool, device=self.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def setup(self, stage: str) -> None:  # noqa: D102
        super().setup(stage)
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None:
            return
        names = getattr(dm, "class_names", None) or getattr(dm, "label_names", None)
        if names is not None:
            if len(names) != self.hparams["num_classes"]:
                raise ValueError(
                    f"model.num_classes={self.hparams['num_classes']} but the data module has {len(names)} classes"
                )
            self.class_names = list(names)
        if stage != "fit":
            return
        noisy_labels = getattr(dm, "noisy_labels", None)
        if noisy_labels is not None:
            self.init_label_state(noisy_labels.noisy, noisy_labels.clean)
        else:  # a plain data module: its training labels are taken as given (no clean reference)
            self.init_label_state(
                dm.datasets["train"].labels
                if hasattr(dm.datasets["train"], "labels")
                else dm.datasets["train"].table.labels
            )

    # -- training ---------------------------------------------------------------------------------------------
    def _nar_active(self) -> bool:
        return self.uses_nar and self.current_epoch >= self.hparams["warm_start_epochs"]

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:  # noqa: D102
        if self.y_start.shape[0] == 0:
            raise RuntimeError("label state is not initialised: fit with a data module or call init_label_state()")
        idx = batch["index"].long()
        logits = self(batch["image"])
        probs = torch.sigmoid(logits.detach())
        self.epoch_probs[idx] = probs
        self.seen[idx] = True
        hp = self.hparams
        if self._nar_active():
            target, w = self.nar_labels[idx], self.nar_weights[idx]
        else:
            target, w = batch["label"].float(), None
        norm = hp["loss_norm"]
        if self.method == "asl":
            loss = asl_loss(logits, target, hp["asl_gamma_neg"], hp["asl_gamma_pos"], hp["asl_clip"])
        elif self.method in ("elr", "nar_elr"):
            p = probs.clamp(1e-4, 1 - 1e-4)
            new_t = hp["elr_beta"] * self.elr_target[idx] + (1 - hp["elr_beta"]) * p
            if w is not None and not hp["elr_update_masked"]:
                new_t = torch.where(w > 0, new_t, self.elr_target[idx])
            self.elr_target[idx] = new_t
            reg = elr_regularizer(logits, new_t, w, norm)
            loss = weighted_bce(logits, target, w, norm) + hp["elr_lambda"] * reg
            self.log("train/elr_reg", reg, batch_size=len(idx))
        elif self.method in ("sat", "nar_sat") and self.current_epoch >= hp["sat_warmup_epochs"]:
            m = hp["sat_momentum"]
            self.sat_target[idx] = m * self.sat_target[idx] + (1 - m) * probs
            loss = weighted_bce(logits, self.sat_target[idx], w, norm)
        else:  # bce, nar, and SAT during its warm-up
            loss = weighted_bce(logits, target, w, norm)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(idx))
        return loss

    @torch.no_grad()
    def _eval_pass_probs(self) -> Tensor:
        dm = self.trainer.datamodule  # type: ignore[attr-defined]
        probs = self.epoch_probs.clone()
        was_training = self.training
        self.eval()
        for batch in dm.nrl_dataloader():
            batch = dm.transform_batch(move_data_to_device(batch, self.device), train=False)
            probs[batch["index"].long()] = torch.sigmoid(self(batch["image"]))
        self.train(was_training)
        return probs

    def _gathered_train_probs(self) -> Tensor:
        probs, seen = self.epoch_probs, self.seen
        if self.trainer.world_size > 1:  # every rank saw other samples: average what was seen
            total = self.trainer.strategy.reduce(probs * seen[:, None], reduce_op="sum")
            count = self.trainer.strategy.reduce(seen.float(), reduce_op="sum")
            return torch.where(count[:, None] > 0, total / count.clamp(min=1)[:, None], probs)
        return probs

    def on_train_epoch_end(self) -> None:  # noqa: D102
        if self.method in ("sat", "nar_sat") and self.current_epoch + 1 < self.hparams["sat_warmup_epochs"]:
            self.sat_target.copy_(self.nar_labels)
        if not self.uses_nar or self.current_epoch + 1 < self.hparams["warm_start_epochs"]:
            return
        probs = self._eval_pass_probs() if self.hparams["nrl_prob_source"] == "eval" else self._gathered_train_probs()
        result = nrl_update(self.y_start, probs, self.nrl_config)
        self.nar_labels.copy_(result.labels)
        self.nar_weights.copy_(result.weights)
        if self.method == "nar_sat":  # flipped entries restart their SAT target at the new label [assumption]
            flipped = result.flip_to_one | result.flip_to_zero
            self.sat_target.copy_(torch.where(flipped, result.labels, self.sat_target))
        self.seen.zero_()
        summary = {
            "nar/flip1": float(result.flip_to_one.sum()),
            "nar/flip0": float(result.flip_to_zero.sum()),
            "nar/deactivated": float(result.deactivated.sum()),
        }
        if self.clean_labels.shape == self.y_start.shape:
            stats = correction_stats(self.y_start, self.clean_labels, result)
            self.correction_history.append({"epoch": float(self.current_epoch), **stats})
            summary.update({f"nar/{k}": v for k, v in stats.items() if not math.isnan(v)})
        self.log_dict(summary)

    def on_fit_end(self) -> None:  # noqa: D102
        if not (self.hparams["write_diagnostics"] and self.correction_history and self.trainer.is_global_zero):
            return
        from rsim.nar.plots import plot_correction_history, write_history_csv

        folder = Path(self.trainer.log_dir or self.trainer.default_root_dir)
        write_history_csv(self.correction_history, folder / "nar_diagnostics.csv")
        plot_correction_history(self.correction_history, folder / "nar_diagnostics.png", title=self.method)

    # -- evaluation -------------------------------------------------------------------------------------------
    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:  # noqa: D102
        super().test_step(batch, batch_idx)
        self.test_per_class.update(self(batch["image"]), batch["label"].int())

    def on_test_epoch_end(self) -> None:  # noqa: D102
        super().on_test_epoch_end()
        values = self.test_per_class.compute()
        for key, per_class in values.items():
            for name, v in zip(self.class_names, per_class.tolist(), strict=False):
                if not math.isnan(v):
                    self.log(f"{key}/{name}", v)
        self.test_per_class.reset()

    def configure_optimizers(self) -> Any:  # noqa: D102
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"])
        total = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 10_000
        warmup = self.hparams["warmup_steps"]
        if warmup is None:
            warmup = 10_000 if total > 10_000 else 100
        warmup = min(warmup, total)
        factor = paper_schedule(warmup, total, self.hparams["min_lr_factor"])
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
