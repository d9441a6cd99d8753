"""One accelerator + AMP training step of BYOL + GeoRank on generated SSL4EO-S12 data (``benchmarks/gpu_check.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rsim.core.testing import fit_one_step
from rsim.georank.data.datamodules import SSL4EODataModule, Views
from rsim.georank.data.testing import write_ssl4eo_fixture
from rsim.georank.tasks import BYOL, GeoRankConfig


def run(tmp: Path, accelerator: str = "cuda", precision: Any = "16-mixed", small: bool = False) -> float:
    """Train one BYOL + GeoRank step on generated data and return the total loss.

    ResNet-18, 10 bands, 120 px crops of 132 px patches, batch 16 (``small``: resnet10t, 32 px, batch 8), with
    device-side views and the device-side soft rank.
    """
    size, crop, batch = (36, 32, 8) if small else (132, 120, 16)
    root = tmp / "ssl4eo"
    write_ssl4eo_fixture(root, num_locations=batch, num_timestamps=2, size=size, seed=0)
    data = SSL4EODataModule(str(root), img_size=crop, batch_size=batch, num_workers=0, temporal_views=True,
                            views=Views(extra=["brightness", "gaussian_blur"]))  # fmt: skip
    kwargs = {"proj_hidden_dim": 64, "proj_dim": 32, "pred_hidden_dim": 64} if small else {}
    task = BYOL(backbone="resnet10t" if small else "resnet18", in_channels=10, georank=GeoRankConfig(), **kwargs)
    return fit_one_step(task, data, tmp, accelerator=accelerator, precision=precision)
