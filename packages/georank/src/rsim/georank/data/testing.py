"""Fixture writer: a tiny SSL4EO-S12 tree with real UTM georeferencing spread over several zones."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin
from rsim.georank.data.ssl4eo import SSL4EO_BAND_FILE, SSL4EO_GSD

#: Default fixture locations (lat, lon): Berlin, Munich, Vienna, Lisbon, Helsinki, Dublin, Rome, Warsaw.
DEFAULT_SITES: tuple[tuple[float, float], ...] = (
    (52.52, 13.40), (48.14, 11.58), (48.21, 16.37), (38.72, -9.14),
    (60.17, 24.94), (53.35, -6.26), (41.90, 12.50), (52.23, 21.01),
)  # fmt: skip
S2_L2A_BANDS: tuple[str, ...] = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")


def utm_epsg(lat: float, lon: float) -> int:
    """EPSG code of the WGS84 UTM zone containing (lat, lon)."""
    zone = int((lon + 180) // 6) + 1
    return (32600 if lat >= 0 else 32700) + zone


def write_ssl4eo_fixture(
    root: str | os.PathLike[str],
    *,
    num_locations: int = 8,
    num_timestamps: int = 2,
    size: int = 24,
    modality: str = "s2a",
    jitter_km: float = 30.0,
    seed: int = 0,
) -> list[tuple[float, float]]:
    """Write an SSL4EO-S12-layout tree; return the true (lat, lon) centre of every location.

    Locations cycle through :data:`DEFAULT_SITES` with a random offset up to ``jitter_km``; each is written in
    its own UTM zone (several zones in total), bands at 10/20/60 m sizes ``size``, ``size/2``, ``size/6``.

    Args:
        root: Output folder (gets ``<modality>/<location>/<timestamp>/<band>.tif``).
        num_locations: Locations to write.
        num_timestamps: Acquisitions per location.
        size: 10 m patch size in pixels (264 in the real data); must be divisible by 6.
        modality: Sub-folder name.
        jitter_km: Maximum random offset from the site.
        seed: Random seed (same seed → identical files).
    """
    if size % 6:
        raise ValueError(f"size must be divisible by 6 (10/20/60 m bands), got {size}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    centres: list[tuple[float, float]] = []
    for i in range(num_locations):
        lat0, lon0 = DEFAULT_SITES[i % len(DEFAULT_SITES)]
        lat = lat0 + rng.uniform(-1, 1) * jitter_km / 111.0
        lon = lon0 + rng.uniform(-1, 1) * jitter_km / (111.0 * np.cos(np.radians(lat0)))
        epsg = utm_epsg(lat, lon)
        x, y = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True).transform(lon, lat)
        half = size * 10 / 2
        ulx, uly = x - half, y + half
        centres.append(
            Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True).transform(ulx + half, uly - half)[::-1]
        )
        for t in range(num_timestamps):
            stamp = f"2021{3 * t + 1:02d}15T101031_2021{3 * t + 1:02d}15T101500_T{epsg % 100:02d}XXX"
            folder = root / modality / f"{i:07d}" / stamp
            folder.mkdir(parents=True, exist_ok=True)
            for band in S2_L2A_BANDS:
                gsd = SSL4EO_GSD[band]
                px = size * 10 // gsd
                data = rng.integers(1, 10000, size=(px, px), dtype=np.uint16)
                profile = {
                    "driver": "GTiff", "height": px, "width": px, "count": 1, "dtype": "uint16",
                    "crs": f"EPSG:{epsg}", "transform": from_origin(ulx, uly, gsd, gsd), "nodata": None,
                }  # fmt: skip
                with rasterio.open(folder / f"{SSL4EO_BAND_FILE[band]}.tif", "w", **profile) as dst:
                    dst.write(data, 1)
    return [(float(a), float(b)) for a, b in centres]


def write_eurosat_fixture(
    root: str | os.PathLike[str],
    *,
    per_class: int = 4,
    size: int = 64,
    classes: tuple[str, ...] | None = None,
    seed: int = 0,
) -> Path:
    """Write a EuroSAT MS tree in the official layout: ``root/EuroSAT_MS/<Class>/<Class>_<n>.tif`` (n from 1).

    Every file is a ``size``×``size`` 13-band uint16 GeoTIFF at 10 m in a UTM CRS (zone of a random European
    location), like the release. Each class has its own mean spectrum (plus noise), so a probe can separate them.

    Args:
        root: Output folder.
        per_class: Files per class.
        size: Pixels per side (64 in the release).
        classes: Class folders to write (default: all 10).
        seed: Random seed (same seed → identical files).

    Returns:
        The ``EuroSAT_MS`` folder.
    """
    from rsim.georank.data.eurosat import EUROSAT_CLASSES, EUROSAT_FILE_BANDS

    rng = np.random.default_rng(seed)
    out = Path(root) / "EuroSAT_MS"
    nb = len(EUROSAT_FILE_BANDS)
    for ci, name in enumerate(classes or EUROSAT_CLASSES):
        spectrum = rng.uniform(500, 4000, size=nb) * (1 + 0.1 * ci)
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(1, per_class + 1):
            lat, lon = rng.uniform(40, 60), rng.uniform(-8, 28)
            epsg = utm_epsg(lat, lon)
            x, y = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True).transform(lon, lat)
            data = spectrum[:, None, None] * rng.uniform(0.8, 1.2, size=(nb, size, size))
            profile = {
                "driver": "GTiff", "height": size, "width": size, "count": nb, "dtype": "uint16",
                "crs": f"EPSG:{epsg}", "transform": from_origin(x, y, 10, 10), "nodata": None,
            }  # fmt: skip
            with rasterio.open(folder / f"{name}_{n}.tif", "w", **profile) as dst:
                dst.write(np.clip(data, 1, 65535).astype(np.uint16))
    return out


def write_eurosat_lmdb(root: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Encode a EuroSAT MS tree into an LMDB store in rico-hdl's format (atomically).

    Key ``<Class>_<n>`` (the file stem); value one safetensors dict ``{B01 … B12, B08A: (H, W) uint16}`` (rico-hdl
    spells B8A as ``B08A``).
    """
    import lmdb
    from rsim.core.data.lmdb_store import encode_value
    from rsim.georank.data.eurosat import EUROSAT_FILE_BANDS, RICO_BAND_KEY, eurosat_files, read_eurosat

    files, _ = eurosat_files(root)
    names = [RICO_BAND_KEY.get(b, b) for b in EUROSAT_FILE_BANDS]
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")  # a store is a folder: written aside, then renamed
    shutil.rmtree(tmp, ignore_errors=True)
    env = lmdb.open(str(tmp), map_size=1 << 30, subdir=True)
    try:
        with env.begin(write=True) as txn:
            for f in files:
                txn.put(f.stem.encode("utf-8"), encode_value(dict(zip(names, read_eurosat(f), strict=True))))
    finally:
        env.close()
    os.replace(tmp, out)
    return out


__all__ = ["DEFAULT_SITES", "utm_epsg", "write_eurosat_fixture", "write_eurosat_lmdb", "write_ssl4eo_fixture"]
