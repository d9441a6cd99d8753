"""One CUDA + AMP training step of Seabed-Net on generated MagicBathyNet data (used by ``benchmarks/gpu_check.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rsim.core.testing import fit_one_step
from rsim.seabednet.data.datamodule import MagicBathyNetDataModule
from rsim.seabednet.data.testing import write_magicbathynet
from rsim.seabednet.tasks import SeabedNetTask


def run(tmp: Path, accelerator: str = "cuda", precision: Any = "16-mixed", small: bool = False) -> float:
    """Train one step (f=64, or f=8 with ``small``; 256², batch 2, device-side resize and flips); return the loss."""
    root = write_magicbathynet(tmp / "magicbathynet", num_patches=6, seed=0)
    data = MagicBathyNetDataModule(root=str(root), site="agia_napa", modality="spot6", batch_size=2, input_size=256)
    task = SeabedNetTask(in_channels=3, features=8 if small else 64, num_classes=5, undefined_index=4)
    return fit_one_step(task, data, tmp, accelerator=accelerator, precision=precision)
