"""Fixture writer: a EuroSAT-MS-format folder of class-dependent 13-band uint16 GeoTIFFs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

__all__ = ["write_eurosat_fixture"]

CLASSES = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
           "PermanentCrop", "Residential", "River", "SeaLake")  # fmt: skip


def write_eurosat_fixture(
    root: str | os.PathLike[str], num_classes: int = 3, per_class: int = 8, size: int = 64, seed: int = 0
) -> Path:
    """Write ``root/<Class>/<Class>_<i>.tif`` files (EPSG:32633, 10 m).

    Classes differ by a small spectral offset (5 % per band) under per-image brightness changes (15 %) and pixel
    noise (25 %), so probes do not separate them trivially.

    Returns:
        ``root``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    base = rng.uniform(500, 4000, size=13)
    for c, name in enumerate(CLASSES[:num_classes]):
        means = base * (1 + 0.05 * rng.standard_normal(13))
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            bright = 1 + 0.15 * rng.standard_normal()
            data = bright * means[:, None, None] * (1 + 0.25 * rng.standard_normal((13, size, size)))
            array = np.clip(data, 1, 10000).astype(np.uint16)
            profile = {
                "driver": "GTiff", "height": size, "width": size, "count": 13, "dtype": "uint16",
                "crs": "EPSG:32633", "transform": from_origin(300000 + 640 * i, 5400000 - 640 * c, 10, 10),
            }  # fmt: skip
            with rasterio.open(root / name / f"{name}_{i + 1}.tif", "w", **profile) as dst:
                dst.write(array)
    return root
