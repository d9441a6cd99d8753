"""Fixture writers: tiny datasets in the exact on-disk formats (HySpecNet-11k, MLRetSet, GeoTIFF)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from rsim.hyvic.data.formats import HYSPECNET_RAW_BANDS, MLRETSET_BANDS, hyspecnet_to_reflectance

_UTM18N = "EPSG:32618"


def _smooth_cube(rng: np.random.Generator, c: int, h: int, w: int) -> np.ndarray:
    """Spatially and spectrally correlated values in [0, 1] (a few spectral endmembers mixed smoothly)."""
    k = 3
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    abund = np.stack([np.sin(2 * np.pi * (f * xx + g * yy) + p) for f, g, p in rng.uniform(0, 2, (k, 3))])
    abund = np.exp(abund) / np.exp(abund).sum(0)
    spectra = np.cumsum(rng.normal(0, 0.05, (k, c)), axis=1) + rng.uniform(0.2, 0.6, (k, 1))
    cube = np.einsum("kc,khw->chw", spectra, abund) + rng.normal(0, 0.005, (c, h, w))
    return np.clip(cube, 0.0, 1.0).astype(np.float32)


def write_geotiff_fixture(
    path: str | Path,
    bands: int = 4,
    height: int = 40,
    width: int = 52,
    dtype: str = "uint16",
    seed: int = 0,
    driver: str = "GTiff",
) -> Path:
    """Write a georeferenced multi-band raster (reflectance x 10000 for integer dtypes).

    ``driver="ENVI"`` writes an ENVI cube instead (``path`` is the binary file, GDAL adds the ``.hdr``).
    """
    import rasterio
    from affine import Affine

    rng = np.random.default_rng(seed)
    cube = _smooth_cube(rng, bands, height, width)
    data = np.round(cube * 10000).astype(dtype) if np.issubdtype(np.dtype(dtype), np.integer) else cube
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": driver,
        "count": bands,
        "height": height,
        "width": width,
        "dtype": dtype,
        "crs": _UTM18N,
        "transform": Affine(10.0, 0.0, 443580.0, 0.0, -10.0, 4174260.0),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i in range(bands):
            dst.set_band_description(i + 1, f"B{i + 1}")
    return path


def write_hyspecnet_fixture(
    root: str | Path,
    tiles: int = 2,
    patches_per_tile: int = 2,
    size: int = 16,
    seed: int = 0,
    write_npy: bool = True,
) -> Path:
    """Write a tiny HySpecNet-11k tree: 224-band int16 ``-SPECTRAL_IMAGE.TIF`` + ``-DATA.npy`` + split CSVs.

    With ``write_npy=False`` only the TIFs are written, as in the official download before conversion.

    Split CSVs (``splits/{easy,hard}/{train,val,test}.csv``) list
    ``tile_XXX/tile_XXX-patch_YY/<name>-DATA.npy``
    one per line without a header, like the official files.
    """
    import rasterio
    from affine import Affine

    rng = np.random.default_rng(seed)
    root = Path(root)
    rel: list[tuple[int, str]] = []
    for t in range(tiles):
        for p in range(patches_per_tile):
            tile = f"tile_{t + 1:03d}"
            folder = root / "patches" / tile / f"{tile}-patch_{p + 1:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            name = f"ENMAP01-____L2A-DT0000001234_20221103T1{t}0000Z_001_V010110_20221104T000000Z-Y0{p}_X0{p}"
            raw = np.round(_smooth_cube(rng, HYSPECNET_RAW_BANDS, size, size) * 11000 - 500).astype(np.int16)
            with rasterio.open(
                folder / f"{name}-SPECTRAL_IMAGE.TIF",
                "w",
                driver="GTiff",
                count=HYSPECNET_RAW_BANDS,
                height=size,
                width=size,
                dtype="int16",
                crs=_UTM18N,
                transform=Affine(30.0, 0, 400000.0 + 3840 * t, 0, -30.0, 4200000.0),
            ) as dst:
                dst.write(raw)
            if write_npy:
                np.save(folder / f"{name}-DATA.npy", hyspecnet_to_reflectance(raw))
            rel.append((t, f"{tile}/{tile}-patch_{p + 1:02d}/{name}-DATA.npy"))
    n = len(rel)
    for mode in ("easy", "hard"):
        (root / "splits" / mode).mkdir(parents=True, exist_ok=True)
        if mode == "easy":
            order = [r for _, r in rel]
            cut = [0, max(1, n - 2), n - 1, n]
        else:  # tile-wise: last tile is test, the one before val
            order = [r for _, r in sorted(rel)]
            per = patches_per_tile
            cut = [0, max(per, n - 2 * per), max(per, n - per), n]
        bounds = list(itertools.pairwise(cut))
        for split, (a, b) in zip(("train", "val", "test"), bounds, strict=True):
            (root / "splits" / mode / f"{split}.csv").write_text("".join(f"{r}\n" for r in order[a:b]))
    return root


def write_mlretset_fixture(
    root: str | Path, images: int = 3, size: int = 20, bands: int = MLRETSET_BANDS, seed: int = 0
) -> Path:
    """Write tiny MLRetSet ``data/NNNN_*.mat`` files (H x W x C float64 under key ``img``) and split CSVs."""
    import scipy.io

    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "splits").mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(images):
        cube = _smooth_cube(rng, bands, size, size).transpose(1, 2, 0).astype(np.float64)
        name = f"data/{i + 1:04d}_ankara.mat"
        scipy.io.savemat(root / name, {"img": cube})
        names.append(name)
    splits = {"train": names[:-2] or names[:1], "val": names[-2:-1], "test": names[-1:]}
    for split, items in splits.items():
        (root / "splits" / f"{split}.csv").write_text("".join(f"{n}\n" for n in items))
    return root


__all__ = ["write_geotiff_fixture", "write_hyspecnet_fixture", "write_mlretset_fixture"]
