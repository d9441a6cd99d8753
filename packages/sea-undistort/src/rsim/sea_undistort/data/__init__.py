"""Sea-Undistort data: released-layout reader, split, glint mask, device-side transforms, fixture writer."""

from rsim.sea_undistort.data.augment import PairTransform
from rsim.sea_undistort.data.datamodule import SeaUndistortDataModule
from rsim.sea_undistort.data.dataset import (
    PAIR_MODES,
    SeaUndistortDataset,
    glint_mask,
    glint_mask_batch,
    gray,
    load_id_list,
    load_scene_settings,
    read_rgb,
    scan_ids,
    split_ids,
)

__all__ = [
    "PAIR_MODES",
    "PairTransform",
    "SeaUndistortDataModule",
    "SeaUndistortDataset",
    "glint_mask",
    "glint_mask_batch",
    "gray",
    "load_id_list",
    "load_scene_settings",
    "read_rgb",
    "scan_ids",
    "split_ids",
]
