"""Coordinates, readers, fixture writer, device-side transforms and SSL data modules."""

from rsim.georank.data.coords import benv2_coordinates, raster_centre_wgs84, read_coordinates, write_coordinates
from rsim.georank.data.datamodules import (
    CARDINALITIES,
    BigEarthNetGeoDataModule,
    SSL4EODataModule,
    Views,
    cardinality_subset,
)
from rsim.georank.data.eurosat import EUROSAT_CLASSES, EuroSATDataModule, read_eurosat
from rsim.georank.data.ssl4eo import SSL4EOS12Dataset, SSL4EOS12Tree
from rsim.georank.data.transforms import AUGMENTATIONS, BEN_P99, PercentileStandardize, ViewAugment

__all__ = [
    "AUGMENTATIONS",
    "BEN_P99",
    "CARDINALITIES",
    "EUROSAT_CLASSES",
    "BigEarthNetGeoDataModule",
    "EuroSATDataModule",
    "PercentileStandardize",
    "SSL4EODataModule",
    "SSL4EOS12Dataset",
    "SSL4EOS12Tree",
    "ViewAugment",
    "Views",
    "benv2_coordinates",
    "cardinality_subset",
    "raster_centre_wgs84",
    "read_coordinates",
    "read_eurosat",
    "write_coordinates",
]
