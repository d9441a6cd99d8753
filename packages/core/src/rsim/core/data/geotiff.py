"""Generic GeoTIFF access for the paper packages: band selection, nodata masks, windowed reads, georeferenced writes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from rsim.core.data.tiling import tile_starts
from rsim.core.errors import DataFormatError
from rsim.core.io import atomic_path
from torch.utils.data import Dataset


def read_geotiff(
    path: str | os.PathLike[str],
    bands: Sequence[int] | None = None,
    window: Window | None = None,
    *,
    expected_bands: int | None = None,
    boundless: bool = False,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a raster as ``(C, H, W)`` with its profile (transform adjusted to the window).

    Args:
        path: Raster file.
        bands: 1-based band indexes (default: all).
        window: Pixel window; with ``boundless`` it may extend past the raster (filled with nodata or 0).
        expected_bands: Refuse files whose band count differs.
        boundless: Allow windows that cross the raster edge.

    Raises:
        FileNotFoundError: ``path`` is missing.
        DataFormatError: Unreadable file, wrong band count or band index out of range.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"raster {path} is missing")
    try:
        with rasterio.open(path) as src:
            if expected_bands is not None and src.count != expected_bands:
                raise DataFormatError(f"{path} has {src.count} bands, expected {expected_bands}")
            indexes = list(bands) if bands is not None else list(range(1, src.count + 1))
            bad = [b for b in indexes if not 1 <= b <= src.count]
            if bad:
                raise DataFormatError(f"{path}: band index(es) {bad} out of range 1..{src.count}")
            fill = src.nodata if src.nodata is not None else 0
            array = src.read(indexes, window=window, boundless=boundless, fill_value=fill)
            profile = dict(src.profile)
            profile.update(count=len(indexes), height=array.shape[1], width=array.shape[2])
            if window is not None:
                profile["transform"] = window_transform(window, src.transform)
            profile["descriptions"] = tuple(src.descriptions[i - 1] for i in indexes)
    except RasterioError as exc:
        raise DataFormatError(f"cannot read raster {path} ({exc})") from exc
    return array, profile


def write_geotiff(path: str | os.PathLike[str], array: np.ndarray, profile: dict[str, Any], **overrides: Any) -> Path:
    """Write ``(C, H, W)`` (or ``(H, W)``) georeferenced data atomically (temp file, then rename).

    ``profile`` is typically the one returned by :func:`read_geotiff`; ``overrides`` (dtype, nodata, compress...)
    take precedence. Band descriptions given as ``descriptions`` are written too.
    """
    data = array[None] if array.ndim == 2 else array
    meta = {k: v for k, v in profile.items() if k not in {"descriptions", "blockxsize", "blockysize", "tiled"}}
    meta.update(driver="GTiff", count=data.shape[0], height=data.shape[1], width=data.shape[2], dtype=data.dtype.name)
    meta.update(overrides)
    descriptions = overrides.pop("descriptions", None) or profile.get("descriptions")
    meta.pop("descriptions", None)
    final = Path(path)
    with atomic_path(final) as tmp:
        with rasterio.open(tmp, "w", **meta) as dst:
            dst.write(data)
            if descriptions and len(descriptions) == data.shape[0]:
                for i, d in enumerate(descriptions, start=1):
                    if d:
                        dst.set_band_description(i, d)
    return final


def raster_centre_wgs84(path: str | os.PathLike[str]) -> tuple[float, float]:
    """``(latitude, longitude)`` in degrees (WGS84) of the centre of a georeferenced raster's bounds.

    The bounds centre is reprojected with PROJ (through ``rasterio.warp.transform``).

    Raises:
        FileNotFoundError: The file is missing.
        DataFormatError: The file is unreadable, has no CRS, or its centre does not transform.
    """
    from rasterio.warp import transform

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"georeferenced raster {path} is missing")
    try:
        with rasterio.open(path) as src:
            crs, bounds = src.crs, src.bounds
    except RasterioError as exc:
        raise DataFormatError(f"cannot read {path} ({exc}); expected a georeferenced GeoTIFF") from exc
    if crs is None:
        raise DataFormatError(f"{path} has no CRS; expected a georeferenced GeoTIFF (e.g. UTM)")
    x, y = 0.5 * (bounds.left + bounds.right), 0.5 * (bounds.bottom + bounds.top)
    lon, lat = transform(crs, "EPSG:4326", [x], [y])
    if not (np.isfinite(lat[0]) and np.isfinite(lon[0])):
        raise DataFormatError(f"{path}: the centre ({x}, {y}) in {crs} does not transform to WGS84")
    return float(lat[0]), float(lon[0])


def valid_mask(array: np.ndarray, nodata: float | None) -> np.ndarray:
    """``(H, W)`` mask of pixels that are finite and not nodata in every band of a ``(C, H, W)`` array."""
    mask = np.ones(array.shape[-2:], dtype=bool)
    if np.issubdtype(array.dtype, np.floating):
        mask &= np.isfinite(array).all(axis=0)
    if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)):
        mask &= ~(array == np.asarray(nodata, dtype=array.dtype)).all(axis=0)
    return mask


@dataclass(frozen=True)
class PatchLocation:
    """Where a patch comes from: the raster, the pixel window and its georeferencing."""

    path: Path
    window: Window
    transform: Any
    crs: Any


class GeoTiffPatchDataset(Dataset[dict[str, Any]]):
    """Fixed-size patches on a regular grid over one or more GeoTIFFs.

    A sample is ``{"image": (C, p, p) raw array, "valid": (p, p) bool, "index": i}``; windows past the raster edge
    are filled with nodata and marked invalid. :meth:`location` gives the window and transform of a patch so
    predictions can be written back georeferenced.

    Args:
        paths: Raster files (all with the same band count).
        patch_size: Patch height and width in pixels.
        stride: Grid step (default: ``patch_size``, no overlap).
        bands: 1-based band indexes to read (default: all).
        expected_bands: Refuse rasters with another band count.
        nodata: Nodata value overriding the files' own.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
        patch_size: int,
        stride: int | None = None,
        *,
        bands: Sequence[int] | None = None,
        expected_bands: int | None = None,
        nodata: float | None = None,
    ) -> None:
        self.paths = [Path(p) for p in ([paths] if isinstance(paths, str | os.PathLike) else paths)]
        if patch_size <= 0:
            raise ValueError(f"patch_size must be positive, got {patch_size}")
        self.patch_size = patch_size
        self.stride = stride or patch_size
        self.bands = list(bands) if bands is not None else None
        self.nodata_override = nodata
        self.locations: list[PatchLocation] = []
        self.nodata: dict[Path, float | None] = {}
        for path in self.paths:
            if not path.is_file():
                raise FileNotFoundError(f"raster {path} is missing")
            try:
                with rasterio.open(path) as src:
                    if expected_bands is not None and src.count != expected_bands:
                        raise DataFormatError(f"{path} has {src.count} bands, expected {expected_bands}")
                    self.nodata[path] = nodata if nodata is not None else src.nodata
                    for row in tile_starts(src.height, patch_size, self.stride):
                        for col in tile_starts(src.width, patch_size, self.stride):
                            window = Window(col, row, patch_size, patch_size)
                            self.locations.append(
                                PatchLocation(path, window, window_transform(window, src.transform), src.crs)
                            )
            except RasterioError as exc:
                raise DataFormatError(f"cannot read raster {path} ({exc})") from exc

    def __len__(self) -> int:
        return len(self.locations)

    def location(self, index: int) -> PatchLocation:
        """Raster, window and transform of patch ``index``."""
        return self.locations[index]

    def __getitem__(self, index: int) -> dict[str, Any]:
        loc = self.locations[index]
        array, _ = read_geotiff(loc.path, self.bands, loc.window, boundless=True)
        valid = valid_mask(array, self.nodata[loc.path])
        with rasterio.open(loc.path) as src:
            row, col = int(loc.window.row_off), int(loc.window.col_off)
            valid[max(0, src.height - row) :, :] = False
            valid[:, max(0, src.width - col) :] = False
        return {"image": array, "valid": valid, "index": index}
