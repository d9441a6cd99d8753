"""One training step of RadioMapTask on generated rooms (used by ``benchmarks/gpu_check.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rsim.core.testing import fit_one_step
from rsim.radiomap.data.datamodule import RadioMapDataModule
from rsim.radiomap.generator import GeneratorConfig, generate_dataset
from rsim.radiomap.tasks import RadioMapTask


def run(tmp: Path, accelerator: str = "cuda", precision: Any = "16-mixed", small: bool = False) -> float:
    """Train one SNDA step (full width, or width 0.125 with ``small``; 256² inputs, batch 4, device-side features)."""
    root = tmp / "radiomap"
    cfg = GeneratorConfig(n_copies=2, severities=(0.5,), seed=0)
    generate_dataset(root, 3, cfg, processes=False, n_workers=1, show_progress=False)
    data = RadioMapDataModule(root=str(root), snda=True, batch_size=4)
    task = RadioMapTask(in_channels=data.num_channels, width_mult=0.125 if small else 1.0)
    return fit_one_step(task, data, tmp, accelerator=accelerator, precision=precision)
