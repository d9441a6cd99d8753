"""One CUDA + AMP training step of HyVIC on a generated HySpecNet-11k tree (used by ``benchmarks/gpu_check.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rsim.core.testing import fit_one_step
from rsim.hyvic.data.datamodule import HyperspectralDataModule
from rsim.hyvic.data.testing import write_hyspecnet_fixture
from rsim.hyvic.tasks import HyVICTask


def run(tmp: Path, accelerator: str = "cuda", precision: Any = "16-mixed", small: bool = False) -> float:
    """Train one step on 202-band 64² crops (main + aux optimisers, on-device flips) and return the loss."""
    root = write_hyspecnet_fixture(tmp / "hyspecnet", tiles=2, patches_per_tile=2, size=32 if small else 64)
    data = HyperspectralDataModule(dataset="hyspecnet", root=str(root), crop_size=32 if small else 64, batch_size=2)
    width = 16 if small else 64
    config = {"in_channels": 202, "num_stages": 2, "width": width, "latent_channels": width, "hyper_channels": width}
    task = HyVICTask(model_config=config)
    return fit_one_step(task, data, tmp, accelerator=accelerator, precision=precision)
