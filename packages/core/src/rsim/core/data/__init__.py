"""BigEarthNet readers, the LMDB store, device-side transforms and data modules.

Names are imported lazily (PEP 562), so ``from rsim.core.data.nomenclature import ...`` or the readers do not pull
in Lightning and kornia.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "BigEarthNetDataset": "rsim.core.data.bigearthnet",
    "BigEarthNetV1Tree": "rsim.core.data.bigearthnet",
    "BigEarthNetV2Tree": "rsim.core.data.bigearthnet",
    "PatchTable": "rsim.core.data.bigearthnet",
    "load_metadata": "rsim.core.data.bigearthnet",
    "v1_patch_table": "rsim.core.data.bigearthnet",
    "BigEarthNetDataModule": "rsim.core.data.datamodules",
    "LmdbPatchStore": "rsim.core.data.lmdb_store",
    "BAND_PRESETS": "rsim.core.data.nomenclature",
    "BEN19_LABELS": "rsim.core.data.nomenclature",
    "label_names": "rsim.core.data.nomenclature",
    "multi_hot": "rsim.core.data.nomenclature",
    "BatchAugment": "rsim.core.data.transforms",
    "Normalize": "rsim.core.data.transforms",
    "stack_bands": "rsim.core.data.transforms",
}

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rsim.core.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


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
