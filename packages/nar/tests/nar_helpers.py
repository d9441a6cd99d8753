from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import Trainer
from rsim.nar.data import SyntheticMultiLabelDataModule
from rsim.nar.tasks import NoisyLabelTask

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "shared" / "data"
TINY = {"backbone": "resnet18", "backbone_kwargs": {"layers": [1, 1, 1, 1]}, "in_channels": 3, "num_classes": 6}


def tiny_dm(tmp: Path, **kw) -> SyntheticMultiLabelDataModule:
    torch.set_num_threads(1)
    args = {
        "num_samples": 90,
        "num_classes": 6,
        "batch_size": 32,
        "sub_rate": 0.4,
        "noise_file": str(tmp / "noisy.npz"),
    }
    args.update(kw)
    return SyntheticMultiLabelDataModule(**args)


def tiny_model(**kw) -> NoisyLabelTask:
    return NoisyLabelTask(**{**TINY, "warmup_steps": 1, **kw})


def tiny_trainer(tmp: Path, **kw) -> Trainer:
    args = {
        "max_epochs": 2,
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": str(tmp),
        "num_sanity_val_steps": 0,
    }
    args.update(kw)
    return Trainer(**args)
