"""Patch-centre coordinates in WGS84 from each patch's georeferencing (GeoTIFF bounds + CRS, via rsim.core).

The centre of the raster bounds is transformed from the file's CRS (UTM for BigEarthNet and SSL4EO-S12) to
EPSG:4326. Dataset-wide computation runs on Dask (``rsim.core.parallel``) and is cached in a parquet file
(``patch_id``, ``lat``, ``lon``) written atomically.
"""

from __future__ import annotations

import functools
import math
import os
import re
import warnings
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


def _ssl4eo_chunk(args: tuple[str, str, list[str], str]) -> list[tuple[float, float]]:
    from rsim.georank.data.ssl4eo import SSL4EOS12Tree

    root, modality, locations, band = args
    tree = SSL4EOS12Tree(root, modality)
    return [tree.centre(loc, band) for loc in locations]


def ssl4eo_coordinates(
    root: str | os.PathLike[str],
    locations: Sequence[str],
    *,
    modality: str = "s2a",
    band: str = "B02",
    client: Any = None,
    chunk_size: int = 512,
    show_progress: bool = False,
) -> np.ndarray:
    """``(N, 2)`` float64 (lat, lon) of SSL4EO-S12 location centres (first timestamp's ``band`` bounds → WGS84).

    Args:
        root: Folder holding ``<modality>/``.
        locations: Location folder names.
        modality: ``s2a``, ``s2c`` or ``s1``.
        band: Band whose file gives the bounds.
        client: A ``distributed.Client``; ``None`` runs serially.
        chunk_size: Locations per Dask task.
        show_progress: Show the progress bar (Dask only).
    """
    locs = [str(x) for x in locations]
    chunks = [(str(root), modality, locs[i : i + chunk_size], band) for i in range(0, len(locs), chunk_size)]
    if client is None:
        results = [_ssl4eo_chunk(c) for c in chunks]
    else:
        from rsim.core.parallel import map_with_progress

        results = map_with_progress(
            _ssl4eo_chunk, chunks, client=client, description="location centres", show_progress=show_progress
        )
    return np.asarray([xy for chunk in results for xy in chunk], dtype=np.float64).reshape(len(locs), 2)


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


#: BigEarthNet patch size in metres (120 px at 10 m) and the ``<tile>_<c>_<r>`` patch-name pattern.
PATCH_M = 1200.0
_PATCH_NAME = re.compile(r"_T(\d{2}[C-X][A-Z]{2})_(\d+)_(\d+)$")


@functools.lru_cache(maxsize=4096)
def s2_tile_origin(tile: str) -> tuple[int, float, float]:
    """``(EPSG, X0, Y0)``: UTM CRS and upper-left corner of a Sentinel-2 tile (e.g. ``33UUP``).

    The tile's upper-left corner is the upper-left corner of its MGRS 100 km square snapped to the 60 m grid
    (T33UUP: 300000, 5400000 in EPSG:32633, checked on the BigEarthNet v2 files; other tiles such as
    ``ULX = 399960`` [assumption: the Sentinel-2 tiling grid's 60 m snapping; at most 60 m off otherwise]); the
    square's lower-left corner comes from the ``mgrs`` package (GeoTrans).

    Raises:
        ValueError: ``tile`` is not an MGRS 100 km square id.
    """
    import mgrs

    if not re.fullmatch(r"\d{2}[C-X][A-Z]{2}", tile):
        raise ValueError(f"{tile!r} is not a Sentinel-2 / MGRS tile id (e.g. 33UUP)")
    with warnings.catch_warnings():  # a square's lower-left corner may lie outside its latitude band: expected
        warnings.simplefilter("ignore")
        try:
            zone, hemisphere, easting, northing = mgrs.MGRS().MGRSToUTM(f"{tile}0000000000")
        except Exception as exc:  # mgrs raises MGRSError for invalid squares
            raise ValueError(f"invalid MGRS tile {tile!r}: {exc}") from exc
    x0 = math.floor(easting / 100_000) * 100_000
    y0 = math.floor(northing / 100_000) * 100_000 + 100_000
    # the S2 tiling grid is snapped to the 60 m pixel grid (ULX 399960, 499980, …; ULY 4400040, …)
    x0, y0 = math.floor(x0 / 60) * 60, math.ceil(y0 / 60) * 60
    return (32600 if hemisphere == "N" else 32700) + int(zone), float(x0), float(y0)


def patch_name_coordinates(patch_ids: Sequence[str]) -> np.ndarray:
    """``(N, 2)`` (lat, lon) of BigEarthNet S2 patch centres from their names alone (no file is read).

    ``<…>_T<tile>_<c>_<r>``: column ``c`` and row ``r`` of 1200 m cells from the tile's upper-left corner, so the
    centre is ``(X0 + 1200·c + 600, Y0 − 1200·r − 600)`` in the tile's UTM zone (bigearthnet.md §2).

    Raises:
        DataFormatError: A name does not end in ``_T<tile>_<c>_<r>``.
    """
    from pyproj import Transformer

    out = np.empty((len(patch_ids), 2), dtype=np.float64)
    groups: dict[int, list[tuple[int, float, float]]] = {}
    for i, pid in enumerate(patch_ids):
        m = _PATCH_NAME.search(str(pid))
        if m is None:
            raise DataFormatError(f"patch id {pid!r} does not end in _T<tile>_<col>_<row> (BigEarthNet v2 S2 name)")
        epsg, x0, y0 = s2_tile_origin(m.group(1))
        c, r = int(m.group(2)), int(m.group(3))
        groups.setdefault(epsg, []).append((i, x0 + PATCH_M * c + PATCH_M / 2, y0 - PATCH_M * r - PATCH_M / 2))
    for epsg, rows in groups.items():
        idx, xs, ys = (np.asarray(v) for v in zip(*rows, strict=True))
        lon, lat = Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True).transform(xs, ys)
        out[idx.astype(int)] = np.stack([lat, lon], axis=1)
    return out


#: Column pairs accepted as patch-centre coordinates in a metadata parquet (BigEarthNet.txt: latitude/longitude).
LATLON_COLUMNS: tuple[tuple[str, str], ...] = (("latitude", "longitude"), ("lat", "lon"))


def metadata_coordinates(frame: pd.DataFrame, patch_ids: Sequence[str], source: str = "metadata") -> np.ndarray:
    """``(N, 2)`` (lat, lon) of ``patch_ids`` from a metadata frame with ``patch_id`` and lat/lon columns.

    Raises:
        DataFormatError: No ``latitude``/``longitude`` (or ``lat``/``lon``) columns, or non-finite values.
        MissingKeyError: A patch id is absent.
    """
    pair = next(((a, b) for a, b in LATLON_COLUMNS if a in frame.columns and b in frame.columns), None)
    if pair is None or "patch_id" not in frame.columns:
        raise DataFormatError(
            f"{source} has no patch_id + latitude/longitude (or lat/lon) columns; columns are {list(frame.columns)}"
        )
    table = frame.drop_duplicates("patch_id").set_index("patch_id")
    absent = [p for p in patch_ids if p not in table.index]
    if absent:
        raise MissingKeyError(f"{source} has no coordinates for {len(absent)} patch(es), e.g. {absent[:3]}")
    out = table.loc[list(patch_ids), list(pair)].to_numpy(dtype=np.float64)
    if not np.isfinite(out).all():
        raise DataFormatError(f"{source}: non-finite {pair[0]}/{pair[1]} values")
    return out


__all__ = [
    "LATLON_COLUMNS",
    "benv2_coordinates",
    "metadata_coordinates",
    "patch_name_coordinates",
    "raster_centre_wgs84",
    "read_coordinates",
    "s2_tile_origin",
    "ssl4eo_coordinates",
    "write_coordinates",
]
