"""Readers of HyVIC's data formats: HySpecNet-11k, MLRetSet, Sentinel-2 band folders, any multi-band GeoTIFF.

Every reader returns raw arrays in C x H x W order; conversion to [0, 1] floats is a separate, device-agnostic
function (:func:`hyspecnet_to_reflectance`, :func:`scale_to_unit`) so DataLoader workers only read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rsim.core.errors import DataFormatError

HYSPECNET_RAW_BANDS = 224
# Water-vapour absorption bands dropped by the HySpecNet-11k conversion, 1-based (EnMAP) numbering.
HYSPECNET_DROPPED_BANDS_1BASED: tuple[int, ...] = (*range(127, 142), *range(161, 168))
HYSPECNET_KEPT_BANDS: tuple[int, ...] = tuple(
    i for i in range(HYSPECNET_RAW_BANDS) if i + 1 not in HYSPECNET_DROPPED_BANDS_1BASED
)
HYSPECNET_BANDS = len(HYSPECNET_KEPT_BANDS)  # 202
HYSPECNET_SCALE = 10000.0
MLRETSET_BANDS = 369


def hyspecnet_to_reflectance(raw: np.ndarray | torch.Tensor) -> Any:
    """Convert raw HySpecNet-11k int16 cubes (..., 224, H, W) to float32 (..., 202, H, W) in [0, 1].

    Drops the water-vapour bands, clips to [0, 10000] and divides by 10000. Works on numpy arrays and on
    torch tensors (on any device).
    """
    if raw.shape[-3] != HYSPECNET_RAW_BANDS:
        raise DataFormatError(f"HySpecNet-11k raw cube must have {HYSPECNET_RAW_BANDS} bands, got {raw.shape[-3]}")
    if isinstance(raw, torch.Tensor):
        idx = torch.as_tensor(HYSPECNET_KEPT_BANDS, device=raw.device)
        return raw.index_select(-3, idx).float().clamp(0, HYSPECNET_SCALE) / HYSPECNET_SCALE
    kept = np.take(raw, HYSPECNET_KEPT_BANDS, axis=-3).astype(np.float32)
    return np.clip(kept, 0, HYSPECNET_SCALE) / np.float32(HYSPECNET_SCALE)


def scale_to_unit(raw: np.ndarray | torch.Tensor, scale: float) -> Any:
    """Divide by ``scale`` and clip to [0, 1] (numpy or torch, any device)."""
    if isinstance(raw, torch.Tensor):
        return (raw.float() / scale).clamp(0.0, 1.0)
    return np.clip(raw.astype(np.float32) / np.float32(scale), 0.0, 1.0)


def _check_finite(arr: np.ndarray, where: str) -> None:
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise DataFormatError(f"{where}: contains NaN or infinite values; expected finite reflectances")


def read_hyspecnet_tif(path: str | Path) -> np.ndarray:
    """Read a HySpecNet-11k ``-SPECTRAL_IMAGE.TIF`` as a raw int16 (224, H, W) array."""
    import rasterio

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"HySpecNet-11k patch not found: {path}")
    with rasterio.open(path) as src:
        if src.count != HYSPECNET_RAW_BANDS:
            raise DataFormatError(f"{path}: expected {HYSPECNET_RAW_BANDS} bands, got {src.count}")
        if src.dtypes[0] != "int16":
            raise DataFormatError(f"{path}: expected int16, got {src.dtypes[0]}")
        return src.read()


def read_hyspecnet_npy(path: str | Path) -> np.ndarray:
    """Read a converted HySpecNet-11k ``-DATA.npy`` (202, H, W) float32 array in [0, 1]."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"HySpecNet-11k patch not found: {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise DataFormatError(f"{path}: not a valid .npy file ({err})") from err
    if arr.ndim != 3 or arr.shape[0] != HYSPECNET_BANDS:
        raise DataFormatError(f"{path}: expected shape ({HYSPECNET_BANDS}, H, W), got {arr.shape}")
    _check_finite(arr, str(path))
    return arr.astype(np.float32, copy=False)


def convert_hyspecnet_patch(tif_path: str | Path) -> Path:
    """Write the ``-DATA.npy`` beside a ``-SPECTRAL_IMAGE.TIF`` (atomic) and return its path."""
    from rsim.core.io import atomic_path

    tif_path = Path(tif_path)
    if not tif_path.name.endswith("-SPECTRAL_IMAGE.TIF"):
        raise DataFormatError(f"{tif_path}: expected a file name ending in -SPECTRAL_IMAGE.TIF")
    out = tif_path.with_name(tif_path.name.replace("-SPECTRAL_IMAGE.TIF", "-DATA.npy"))
    data = hyspecnet_to_reflectance(read_hyspecnet_tif(tif_path))
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.save(fh, data)
    return out


def read_split_csv(path: str | Path) -> list[str]:
    """Read a one-column split CSV (one relative path per line, no header) into a list."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    lines = [ln.strip().split(",")[0] for ln in path.read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.lower().startswith(("path", "file"))]


def hyspecnet_files(root: str | Path, split_mode: str, split: str, *, source: str = "auto") -> list[Path]:
    """List the patch files of a HySpecNet-11k split.

    Args:
        root: Dataset root with ``patches/`` and ``splits/``.
        split_mode: ``easy`` (patch-wise) or ``hard`` (tile-wise).
        split: ``train``, ``val`` or ``test``.
        source: ``npy`` (``-DATA.npy``), ``tif`` (``-SPECTRAL_IMAGE.TIF``) or ``auto`` (npy when present).
    """
    if split_mode not in {"easy", "hard"}:
        raise ValueError(f"split_mode must be 'easy' or 'hard', got {split_mode!r}")
    if source not in {"auto", "npy", "tif"}:
        raise ValueError(f"source must be auto/npy/tif, got {source!r}")
    root = Path(root)
    rel = read_split_csv(root / "splits" / split_mode / f"{split}.csv")
    files = []
    for r in rel:
        npy = root / "patches" / r
        tif = npy.with_name(npy.name.replace("-DATA.npy", "-SPECTRAL_IMAGE.TIF"))
        if source == "npy" or (source == "auto" and npy.is_file()):
            files.append(npy)
        else:
            files.append(tif)
    return files


def read_hyspecnet_patch(path: str | Path) -> np.ndarray:
    """Read either HySpecNet-11k form: raw int16 (224, H, W) from a TIF, float32 (202, H, W) from a npy."""
    return read_hyspecnet_npy(path) if str(path).endswith(".npy") else read_hyspecnet_tif(path)


def read_mlretset_mat(path: str | Path, *, bands: int = MLRETSET_BANDS, key: str | None = None) -> np.ndarray:
    """Read an MLRetSet ``.mat`` image (H x W x C, last non-metadata key) as float32 C x H x W."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MLRetSet file not found: {path}")
    try:
        mat = scipy.io.loadmat(path)
    except (ValueError, OSError) as err:
        raise DataFormatError(f"{path}: not a readable MATLAB file ({err})") from err
    keys = [k for k in mat if not k.startswith("__")]
    if not keys:
        raise DataFormatError(f"{path}: no data variable in the .mat file")
    name = key or keys[-1]
    if name not in mat:
        raise DataFormatError(f"{path}: key {name!r} absent; keys are {keys}")
    arr = np.asarray(mat[name])
    if arr.ndim != 3 or arr.shape[2] != bands:
        raise DataFormatError(f"{path}: key {name!r} has shape {arr.shape}, expected (H, W, {bands})")
    out = np.ascontiguousarray(arr.transpose(2, 0, 1).astype(np.float32))
    _check_finite(out, f"{path}[{name}]")
    return out


def mlretset_files(root: str | Path, split: str) -> list[Path]:
    """List MLRetSet ``.mat`` files of a split (``splits/{split}.csv``, paths relative to ``root``)."""
    root = Path(root)
    return [root / r for r in read_split_csv(root / "splits" / f"{split}.csv")]


@dataclass
class Raster:
    """An in-memory multi-band raster with its georeferencing.

    Attributes:
        data: C x H x W array (native dtype).
        profile: rasterio profile (crs, transform, dtype, nodata...).
        band_names: One name per band.
        source: Where it was read from (for messages).
    """

    data: np.ndarray
    profile: dict[str, Any]
    band_names: list[str] = field(default_factory=list)
    source: str = ""


def read_s2_folder(folder: str | Path, *, grid: int = 10, bands: Sequence[str] | None = None) -> Raster:
    """Stack a folder of single-band Sentinel-2 GeoTIFFs described by ``bands.json``.

    ``grid=10`` keeps the four 10 m bands (B02, B03, B04, B08) at full resolution. ``grid=20`` puts the 10 m
    bands
    (2x2 mean) and the six 20 m bands on the 20 m grid (10 bands). 60 m bands are never used (their 86 px grid
    overhangs the 10/20 m window). No resampling of finer bands up.
    """
    import rasterio

    folder = Path(folder)
    meta_path = folder / "bands.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{folder}: bands.json not found (expected a Sentinel-2 band folder)")
    meta = json.loads(meta_path.read_text())
    if grid not in (10, 20):
        raise ValueError(f"grid must be 10 or 20 (m), got {grid}")
    entries = [b for b in meta["bands"] if b["resolution_m"] <= grid]
    if bands is not None:
        by_name = {b["band"]: b for b in entries}
        missing = [n for n in bands if n not in by_name]
        if missing:
            raise DataFormatError(f"{meta_path}: bands {missing} absent on the {grid} m grid")
        entries = [by_name[n] for n in bands]
    arrays, profile = [], None
    for b in entries:
        path = folder / b["file"]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: listed in bands.json but missing")
        with rasterio.open(path) as src:
            arr = src.read(1)
            if b["resolution_m"] == grid:
                profile = dict(src.profile)
        factor = grid // b["resolution_m"]
        if factor > 1:
            h, w = arr.shape[0] // factor, arr.shape[1] // factor
            arr = arr[: h * factor, : w * factor].reshape(h, factor, w, factor).astype(np.float64).mean((1, 3))
            arr = np.round(arr).astype(meta.get("dtype", "uint16"))
        arrays.append(arr)
    if profile is None:
        raise DataFormatError(f"{folder}: no band at {grid} m")
    data = np.stack(arrays)
    profile.update(count=data.shape[0], dtype=str(data.dtype))
    return Raster(data, profile, [b["band"] for b in entries], str(folder))


def read_geotiff(path: str | Path) -> Raster:
    """Read a whole multi-band GeoTIFF (raises on NaN)."""
    import rasterio

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GeoTIFF not found: {path}")
    try:
        with rasterio.open(path) as src:
            data = src.read()
            names = [d or f"band{i + 1}" for i, d in enumerate(src.descriptions)]
            profile = dict(src.profile)
    except rasterio.errors.RasterioIOError as err:
        raise DataFormatError(f"{path}: not a readable GeoTIFF ({err})") from err
    _check_finite(data, str(path))
    return Raster(data, profile, names, str(path))


__all__ = [
    "HYSPECNET_BANDS",
    "HYSPECNET_DROPPED_BANDS_1BASED",
    "HYSPECNET_KEPT_BANDS",
    "MLRETSET_BANDS",
    "Raster",
    "convert_hyspecnet_patch",
    "hyspecnet_files",
    "hyspecnet_to_reflectance",
    "mlretset_files",
    "read_geotiff",
    "read_hyspecnet_npy",
    "read_hyspecnet_patch",
    "read_hyspecnet_tif",
    "read_mlretset_mat",
    "read_s2_folder",
    "read_split_csv",
    "scale_to_unit",
]
