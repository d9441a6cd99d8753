"""Patch-centre coordinates in WGS84 from each patch's georeferencing (GeoTIFF bounds + CRS, via rsim.core).

The centre of the raster bounds is transformed from the file's CRS (UTM for BigEarthNet and SSL4EO-S12) to
EPSG:4326. Dataset-wide computation runs on Dask (``rsim.core.parallel``) and is cached in a parquet file
(``patch_id``, ``lat``, ``lon``) written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rsim.core.data import BigEarthNetV2Tree
from rsim.core.data.geotiff import raster_centre_wgs84
from rsim.core.errors import DataFormatError, MissingKeyError
from rsim.core.io import atomic_path


def _benv2_chunk(args: tuple[str, list[str], str]) -> list[tuple[float, float]]:
    root, patch_ids, band = args
    tree = BigEarthNetV2Tree(root)
    return [raster_centre_wgs84(tree.band_file(p, band)) for p in patch_ids]


def benv2_coordinates(
    root: str | os.PathLike[str],
    patch_ids: Sequence[str],
    *,
    band: str = "B02",
    client: Any = None,
    chunk_size: int = 512,
    show_progress: bool = False,
) -> np.ndarray:
    """``(N, 2)`` float64 (lat, lon) of BigEarthNet v2 S2 patch centres, read from ``band``'s GeoTIFF.

    Args:
        root: The v2 archive root.
        patch_ids: S2 patch ids.
        band: Band whose file gives the bounds (all bands of a patch share them).
        client: A ``distributed.Client`` (see ``rsim.core.parallel.dask_client``); ``None`` runs serially.
        chunk_size: Patches per Dask task.
        show_progress: Show the progress bar (Dask only).
    """
    ids = [str(p) for p in patch_ids]
    chunks = [(str(root), ids[i : i + chunk_size], band) for i in range(0, len(ids), chunk_size)]
    if client is None:
        results = [_benv2_chunk(c) for c in chunks]
    else:
        from rsim.core.parallel import map_with_progress

        results = map_with_progress(
            _benv2_chunk, chunks, client=client, description="patch centres", show_progress=show_progress
        )
    flat = [xy for chunk in results for xy in chunk]
    return np.asarray(flat, dtype=np.float64).reshape(len(ids), 2)


def write_coordinates(path: str | os.PathLike[str], patch_ids: Sequence[str], coords: np.ndarray) -> Path:
    """Write ``patch_id, lat, lon`` to a parquet file atomically."""
    coords = np.asarray(coords, dtype=np.float64)
    if coords.shape != (len(patch_ids), 2):
        raise ValueError(f"coords must be ({len(patch_ids)}, 2), got {coords.shape}")
    frame = pd.DataFrame({"patch_id": list(patch_ids), "lat": coords[:, 0], "lon": coords[:, 1]})
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(path)


def read_coordinates(path: str | os.PathLike[str], patch_ids: Sequence[str]) -> np.ndarray:
    """``(N, 2)`` (lat, lon) of ``patch_ids`` from a file written by :func:`write_coordinates`.

    Raises:
        FileNotFoundError: The file is missing.
        DataFormatError: Columns are missing or values are not finite.
        MissingKeyError: A patch id is not in the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"coordinates file {path} is missing (write it with `georank coords`)")
    frame = pd.read_parquet(path)
    missing_cols = [c for c in ("patch_id", "lat", "lon") if c not in frame.columns]
    if missing_cols:
        raise DataFormatError(f"{path} lacks column(s) {missing_cols}; expected patch_id, lat, lon")
    frame = frame.set_index("patch_id")
    absent = [p for p in patch_ids if p not in frame.index]
    if absent:
        raise MissingKeyError(f"{path} has no coordinates for {len(absent)} patch(es), e.g. {absent[:3]}")
    out = frame.loc[list(patch_ids), ["lat", "lon"]].to_numpy(dtype=np.float64)
    if not np.isfinite(out).all():
        raise DataFormatError(f"{path}: non-finite lat/lon values")
    return out


__all__ = ["benv2_coordinates", "raster_centre_wgs84", "read_coordinates", "write_coordinates"]
