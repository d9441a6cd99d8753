"""Sea-Undistort: through-water restoration data (released layout + Blender generator) and ResShift(+EF)."""

from rsim.sea_undistort.data import SeaUndistortDataModule, SeaUndistortDataset, glint_mask
from rsim.sea_undistort.masks import ThresholdMaskProvider
from rsim.sea_undistort.metrics import RestorationMetrics
from rsim.sea_undistort.models import NAFUNet, ResShift, ResShiftDiffusion, SwinUNet, VQAutoencoder
from rsim.sea_undistort.tasks import ResShiftTask, SupervisedRestorationTask, load_task

__all__ = [
    "NAFUNet",
    "ResShift",
    "ResShiftDiffusion",
    "ResShiftTask",
    "RestorationMetrics",
    "SeaUndistortDataModule",
    "SeaUndistortDataset",
    "SupervisedRestorationTask",
    "SwinUNet",
    "ThresholdMaskProvider",
    "VQAutoencoder",
    "glint_mask",
    "load_task",
]
