"""SSL4EO-S12 (v1 GeoTIFF layout) reader: ``<root>/<modality>/<location>/<timestamp>/<band>.tif``.

``modality`` is ``s2a`` (L2A), ``s2c`` (L1C) or ``s1``; ``location`` a zero-padded id (``0000000``); each
``timestamp`` folder (one per season, named after its acquisition) holds one single-band GeoTIFF per band, named
``B1``…``B12``/``B8A`` at native resolution (264 px at 10 m, 132 px at 20 m, 44 px at 60 m) in the local UTM CRS.
Samples carry the raw arrays keyed by BigEarthNet band names (``B2`` → ``B02``) and the patch centre in WGS84.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rsim.core.errors import DataFormatError
from rsim.georank.data.coords import raster_centre_wgs84
from torch.utils.data import Dataset

#: BigEarthNet-style band name → SSL4EO-S12 file stem.
SSL4EO_BAND_FILE: dict[str, str] = {
    "B01": "B1", "B02": "B2", "B03": "B3", "B04": "B4", "B05": "B5", "B06": "B6", "B07": "B7", "B08": "B8",
    "B8A": "B8A", "B09": "B9", "B10": "B10", "B11": "B11", "B12": "B12", "VV": "VV", "VH": "VH",
}  # fmt: skip
#: Ground sampling distance (m) of each band.
SSL4EO_GSD: dict[str, int] = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10, "B8A": 20, "B09": 60,
    "B10": 60, "B11": 20, "B12": 20, "VV": 10, "VH": 10,
}  # fmt: skip
SSL4EO_PATCH_PX = 264  # at 10 m


class SSL4EOS12Tree:
    """Index of an SSL4EO-S12 modality folder: locations and their timestamp folders (sorted).

    Args:
        root: Folder holding ``s2a/``, ``s2c/`` and/or ``s1/``.
        modality: Sub-folder to read.

    Raises:
        FileNotFoundError: The modality folder is missing or holds no location.
    """

    def __init__(self, root: str | os.PathLike[str], modality: str = "s2a") -> None:
        self.root = Path(root)
        self.modality = modality
        folder = self.root / modality
        if not folder.is_dir():
            raise FileNotFoundError(f"SSL4EO-S12 folder {folder} is missing (expected <root>/{modality}/<location>/)")
        self.locations: list[str] = sorted(p.name for p in folder.iterdir() if p.is_dir())
        if not self.locations:
            raise FileNotFoundError(f"SSL4EO-S12 folder {folder} holds no location folders")

    def timestamps(self, location: str) -> list[str]:
        """Timestamp folders of a location, sorted.

        Raises:
            FileNotFoundError: The location has no timestamp folder.
        """
        folder = self.root / self.modality / location
        stamps = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        if not stamps:
            raise FileNotFoundError(f"SSL4EO-S12 location {folder} holds no timestamp folders")
        return stamps

    def band_file(self, location: str, timestamp: str, band: str) -> Path:
        """GeoTIFF of one band."""
        if band not in SSL4EO_BAND_FILE:
            raise KeyError(f"unknown SSL4EO-S12 band {band!r}; expected one of {sorted(SSL4EO_BAND_FILE)}")
        return self.root / self.modality / location / timestamp / f"{SSL4EO_BAND_FILE[band]}.tif"

    def read(self, location: str, timestamp: str, bands: Sequence[str]) -> dict[str, np.ndarray]:
        """Raw single-band arrays at native resolution.

        Raises:
            FileNotFoundError: A band file is missing.
            DataFormatError: A file is unreadable, has several bands, or mismatches the other bands' footprint.
        """
        out: dict[str, np.ndarray] = {}
        for band in bands:
            path = self.band_file(location, timestamp, band)
            if not path.is_file():
                raise FileNotFoundError(f"SSL4EO-S12 {location}/{timestamp}: band {band} file {path} is missing")
            try:
                with rasterio.open(path) as src:
                    if src.count != 1:
                        raise DataFormatError(f"{path} has {src.count} bands, expected 1 ({band})")
                    out[band] = src.read(1)
            except RasterioError as exc:
                raise DataFormatError(f"cannot read {path} ({exc}); expected a single-band GeoTIFF") from exc
        ref = next((b for b in bands if SSL4EO_GSD[b] == 10), None)
        if ref is not None:
            size = out[ref].shape[0]
            for band in bands:
                want = size * 10 // SSL4EO_GSD[band]
                if out[band].shape != (want, want):
                    raise DataFormatError(
                        f"SSL4EO-S12 {location}/{timestamp}: band {band} is {out[band].shape}, expected "
                        f"({want}, {want}) for {SSL4EO_GSD[band]} m next to {ref} at {size} px"
                    )
        return out

    def centre(self, location: str, band: str = "B02") -> tuple[float, float]:
        """``(lat, lon)`` of the location's patch centre, from its first timestamp."""
        return raster_centre_wgs84(self.band_file(location, self.timestamps(location)[0], band))


class SSL4EOS12Dataset(Dataset[dict[str, Any]]):
    """SSL samples: raw bands of one (or two) acquisitions of a location plus its WGS84 centre.

    A sample is ``{"bands": {...}, "coords": (2,) float64, "index": int}`` and, with ``temporal_views``,
    ``"bands_t2"``: a second acquisition of the same location (random per call) as the positive pair.

    Args:
        tree: The location index.
        bands: Band names (BigEarthNet spelling).
        temporal_views: Return a second timestamp as ``bands_t2``.
        indices: Locations to use (positions in ``tree.locations``); ``None`` uses all.
        seed: Seed of the timestamp draws.
    """

    def __init__(
        self,
        tree: SSL4EOS12Tree,
        bands: Sequence[str],
        *,
        temporal_views: bool = False,
        indices: Sequence[int] | None = None,
        seed: int = 0,
    ) -> None:
        self.tree = tree
        self.bands = list(bands)
        self.temporal_views = temporal_views
        self.indices = list(range(len(tree.locations))) if indices is None else list(indices)
        self.seed = seed
        self.draws = 0

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        location = self.tree.locations[self.indices[index]]
        stamps = self.tree.timestamps(location)
        rng = np.random.default_rng((self.seed, index, self.draws))
        self.draws += 1
        first = stamps[0] if not self.temporal_views else stamps[int(rng.integers(len(stamps)))]
        ref = next((b for b in self.bands if SSL4EO_GSD[b] == 10), self.bands[0])
        sample: dict[str, Any] = {
            "bands": self.tree.read(location, first, self.bands),
            "coords": np.asarray(raster_centre_wgs84(self.tree.band_file(location, first, ref)), dtype=np.float64),
            "index": index,
        }
        if self.temporal_views:
            others = [s for s in stamps if s != first] or [first]
            sample["bands_t2"] = self.tree.read(location, others[int(rng.integers(len(others)))], self.bands)
        return sample


__all__ = ["SSL4EO_BAND_FILE", "SSL4EO_GSD", "SSL4EOS12Dataset", "SSL4EOS12Tree"]
