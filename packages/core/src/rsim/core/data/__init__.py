"""BigEarthNet readers, the LMDB store, device-side transforms and data modules."""

from rsim.core.data.bigearthnet import (
    BigEarthNetDataset,
    BigEarthNetV1Tree,
    BigEarthNetV2Tree,
    PatchTable,
    load_metadata,
    v1_patch_table,
)
from rsim.core.data.datamodules import BigEarthNetDataModule
from rsim.core.data.lmdb_store import LmdbPatchStore
from rsim.core.data.nomenclature import BAND_PRESETS, BEN19_LABELS, label_names, multi_hot
from rsim.core.data.transforms import BatchAugment, Normalize, stack_bands

__all__ = [
    "BAND_PRESETS",
    "BEN19_LABELS",
    "BatchAugment",
    "BigEarthNetDataModule",
    "BigEarthNetDataset",
    "BigEarthNetV1Tree",
    "BigEarthNetV2Tree",
    "LmdbPatchStore",
    "Normalize",
    "PatchTable",
    "label_names",
    "load_metadata",
    "multi_hot",
    "stack_bands",
    "v1_patch_table",
]
