"""One CUDA + AMP training step of ResShift+EF on a generated Sea-Undistort fixture (for benchmarks/gpu_check.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rsim.core.testing import fit_one_step
from rsim.sea_undistort.data.datamodule import SeaUndistortDataModule
from rsim.sea_undistort.data.testing import write_sea_undistort_fixture
from rsim.sea_undistort.tasks import ResShiftTask


def run(tmp: Path, accelerator: str = "cuda", precision: Any = "16-mixed", small: bool = False) -> float:
    """Train one ResShift+EF step (device-side crops/flips/jitter, early-fused mask) and return the loss."""
    size = 32 if small else 256
    fixture = write_sea_undistort_fixture(tmp / "su", num_scenes=10, size=size + 16 if small else 320)
    data = SeaUndistortDataModule(str(fixture.root), size=size, batch_size=4 if small else 8, color_jitter="strong")
    if small:
        task = ResShiftTask(early_fusion=True, model_channels=16, channel_mult=(1, 2), num_res_blocks=1,
                            attention_levels=(2,), swin_embed_dim=16, window_size=4, head_dim=8, lq_widths=(8, 8, 8),
                            ema_decay=None)  # fmt: skip
    else:  # the paper's denoiser size, pixel space (no VQ weights on the test machine)
        task = ResShiftTask(early_fusion=True, channel_mult=(1, 2, 2, 4), ema_decay=0.999)
    return fit_one_step(task, data, tmp, accelerator=accelerator, precision=precision)
