"""Readers of HySpecNet-11k, MLRetSet and multi-band rasters; the data module; fixture writers (testing)."""

from rsim.hyvic.data.datamodule import (
    HyperspectralDataModule,
    HySpecNetDataset,
    MLRetSetDataset,
    RasterPatchDataset,
)
from rsim.hyvic.data.formats import (
    HYSPECNET_BANDS,
    hyspecnet_files,
    hyspecnet_to_reflectance,
    read_hyspecnet_npy,
    read_hyspecnet_tif,
    read_mlretset_mat,
    read_s2_folder,
)

__all__ = [
    "HYSPECNET_BANDS",
    "HySpecNetDataset",
    "HyperspectralDataModule",
    "MLRetSetDataset",
    "RasterPatchDataset",
    "hyspecnet_files",
    "hyspecnet_to_reflectance",
    "read_hyspecnet_npy",
    "read_hyspecnet_tif",
    "read_mlretset_mat",
    "read_s2_folder",
]
