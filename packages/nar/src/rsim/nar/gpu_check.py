"""One CUDA + AMP training step of NAR+ELR on a noisy generated BigEarthNet v2 archive (for benchmarks/gpu_check.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rsim.core.testing import fit_one_step, write_benv2_fixture
from rsim.nar.data.bigearthnet import NoisyBigEarthNetDataModule
from rsim.nar.tasks import NoisyLabelTask


def run(tmp: Path, accelerator: str = "cuda", precision: Any = "16-mixed", small: bool = False) -> float:
    """Train one NAR+ELR step (ResNet-18, 10 S2 bands, 40 % mixed noise, GPU transforms) and return the loss."""
    fixture = write_benv2_fixture(tmp / "ben", splits={"train": 8, "validation": 2, "test": 2})
    data = NoisyBigEarthNetDataModule(
        add_rate=0.4, sub_rate=0.4, noise_file=str(tmp / "noisy.npz"), root=str(fixture.root), bands="S2",
        batch_size=8, num_workers=2,
    )  # fmt: skip
    task = NoisyLabelTask(
        method="nar_elr", backbone="test_resnet" if small else "resnet18", in_channels=10, num_classes=19
    )
    return fit_one_step(task, data, tmp, accelerator=accelerator, precision=precision)
