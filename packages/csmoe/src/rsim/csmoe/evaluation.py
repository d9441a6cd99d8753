"""Feature extraction for the downstream evaluations (retrieval) from an rsim-core data module."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from rsim.csmoe.tasks import CSMoEPretrainTask
from torch import Tensor

__all__ = ["Features", "extract_features", "instantiate_datamodule"]


@dataclass
class Features:
    """Pooled per-sensor features and labels of one split."""

    features: dict[str, Tensor]
    labels: Tensor


def instantiate_datamodule(spec: dict[str, Any]) -> LightningDataModule:
    """Build a data module from a ``{"class_path", "init_args"}`` mapping (the LightningCLI config shape)."""
    if "class_path" not in spec:
        raise KeyError("data section needs 'class_path' (e.g. rsim.core.data.BigEarthNetDataModule)")
    module_name, _, cls_name = spec["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module_name), cls_name)
    dm = cls(**(spec.get("init_args") or {}))
    if not isinstance(dm, LightningDataModule):
        raise TypeError(f"{spec['class_path']} is not a LightningDataModule")
    return dm


@torch.no_grad()
def extract_features(task: CSMoEPretrainTask, datamodule: Any, split: str) -> Features:
    """Run the encoder (unmasked) over a split; batches go through the module's device-side transform.

    Args:
        task: Trained task.
        datamodule: An rsim-core data module with ``setup``, ``datasets``/loaders and ``transform_batch``.
        split: ``train``, ``validation`` or ``test``.
    """
    stage = {"train": "fit", "validation": "validate", "test": "test"}.get(split)
    if stage is None:
        raise ValueError(f"unknown split {split!r}; expected train, validation or test")
    datamodule.setup(stage)
    loader = {
        "train": datamodule.train_dataloader,
        "validation": datamodule.val_dataloader,
        "test": datamodule.test_dataloader,
    }[split]()
    task.eval()
    device = next(task.parameters()).device
    feats: dict[str, list[Tensor]] = {"s1": [], "s2": []}
    labels: list[Tensor] = []
    for batch in loader:
        batch = datamodule.transfer_batch_to_device(batch, device, 0)
        batch = datamodule.transform_batch(batch, train=False)
        out = task(task.images(batch))
        for s in feats:
            feats[s].append(out[s].cpu())
        labels.append(batch["label"].cpu())
    if not labels:
        raise ValueError(f"split {split!r} is empty")
    return Features({s: torch.cat(v) for s, v in feats.items()}, torch.cat(labels))
