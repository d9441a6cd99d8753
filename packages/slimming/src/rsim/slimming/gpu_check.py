"""One accelerator training step of :class:`SlimmableTask` (MoCo, sandwich of 4 widths) on generated reBEN data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rsim.core.data import BigEarthNetDataModule
from rsim.core.testing import fit_one_step, write_benv2_fixture
from rsim.slimming.tasks import SlimmableTask


def run(tmp: Path, accelerator: str = "cuda", precision: Any = "16-mixed", small: bool = False) -> float:
    """Train one step (ViT-S/16 at 224², or a 64-wide 2-block ViT at 32² with ``small``); return the loss."""
    fx = write_benv2_fixture(tmp / "benv2", splits={"train": 4, "validation": 1, "test": 1})
    size = 32 if small else 224
    data = BigEarthNetDataModule(
        root=str(fx.root), metadata=str(fx.metadata_path), bands="S2", img_size=size, batch_size=4,
        num_workers=0, persistent_workers=False, limit_to_available=True,
    )  # fmt: skip
    kwargs = {"embed_dim": 64, "depth": 2, "num_heads": 2, "patch_size": 8} if small else {}
    task = SlimmableTask(in_channels=10, img_size=size, backbone_kwargs=kwargs, warmup_steps=1)
    return fit_one_step(task, data, tmp, accelerator=accelerator, precision=precision)
