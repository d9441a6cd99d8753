"""Write a BigEarthNet v2 (reBEN) archive tree with ``metadata.parquet`` in the official layout.

Files match the real archive (see ``shared/data/benv2``): single-band striped GeoTIFFs, S2 uint16 with nodata 0
at 120/60/20 px, S1 float32 dB without nodata, DEFLATE uint16 reference maps of CLC Level-3 codes, UTM CRS and
the patch-name geometry ``UL = (X0 + 1200·c, Y0 − 1200·r)``. Labels are derived from each reference map, so
metadata, maps and multi-hot vectors agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.transform import from_origin
from rsim.core.data.nomenclature import BAND_GSD, S1_BANDS, S2_BANDS, UNLABELED, clc_code_to_19, native_size

TILE = "T33UUP"
TILE_ORIGIN = (300000.0, 5400000.0)
CRS = "EPSG:32633"
S2_PRODUCT = f"S2A_MSIL2A_20170613T101031_N9999_R022_{TILE}"
S1_PRODUCT = "S1A_IW_GRDH_1SDV_20170613T165043"


@dataclass(frozen=True)
class BenV2Fixture:
    """Paths and metadata of a written fixture."""

    root: Path
    metadata_path: Path
    snow_cloud_path: Path
    metadata: pd.DataFrame
    snow_cloud: pd.DataFrame


def _write(path: Path, array: np.ndarray, transform: object, nodata: float | None, compress: str | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "height": array.shape[0],
        "width": array.shape[1],
        "count": 1,
        "dtype": array.dtype.name,
        "crs": CRS,
        "transform": transform,
        "nodata": nodata,
    }
    if compress:
        profile.update(compress=compress, predictor=2)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)


def write_benv2_fixture(
    root: str | os.PathLike[str],
    *,
    splits: dict[str, int] | None = None,
    snow_cloud: int = 1,
    seed: int = 0,
    with_s1: bool = True,
    with_reference_maps: bool = True,
) -> BenV2Fixture:
    """Write a tiny BigEarthNet v2 archive under ``root``.

    Args:
        root: Output folder; gets ``BigEarthNet-S1/``, ``BigEarthNet-S2/``, ``Reference_Maps/`` and
            ``metadata/{metadata.parquet, metadata_for_patches_with_snow_cloud_or_shadow.parquet}``.
        splits: Patches per split (default 4 train, 2 validation, 2 test).
        snow_cloud: Extra patches written to disk but listed only in the snow/cloud file (train split).
        seed: Random seed; the same seed writes identical files.
        with_s1: Write the S1 partners.
        with_reference_maps: Write the reference maps.

    Returns:
        The paths and both metadata frames.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    splits = splits or {"train": 4, "validation": 2, "test": 2}
    codes = np.array([c for c, name in clc_code_to_19().items() if name != UNLABELED and c != 999])
    rows: list[dict[str, object]] = []
    total = sum(splits.values()) + snow_cloud
    split_of = [s for s, n in splits.items() for _ in range(n)] + ["train"] * snow_cloud
    for i in range(total):
        col, row = i % 50, i // 50
        patch_id = f"{S2_PRODUCT}_{col:02d}_{row:02d}"
        s1_name = f"{S1_PRODUCT}_{TILE[1:]}_{col}_{row}"
        ulx, uly = TILE_ORIGIN[0] + 1200 * col, TILE_ORIGIN[1] - 1200 * row
        # A reference map of 2–4 CLC classes in vertical stripes; labels are derived from it.
        present = rng.choice(codes, size=int(rng.integers(2, 5)), replace=False)
        ref = np.repeat(present, int(np.ceil(120 / len(present))))[:120].astype(np.uint16)
        ref_map = np.tile(ref, (120, 1))
        labels = sorted({clc_code_to_19()[int(c)] for c in present})
        s2_dir = root / "BigEarthNet-S2" / S2_PRODUCT / patch_id
        for band in S2_BANDS:
            size, gsd = native_size(band), BAND_GSD[band]
            data = rng.integers(1, 10000, size=(size, size), dtype=np.uint16)
            _write(s2_dir / f"{patch_id}_{band}.tif", data, from_origin(ulx, uly, gsd, gsd), 0, None)
        if with_s1:
            s1_dir = root / "BigEarthNet-S1" / S1_PRODUCT / s1_name
            for band in S1_BANDS:
                data = rng.normal(-15.0, 5.0, size=(120, 120)).astype(np.float32)
                _write(s1_dir / f"{s1_name}_{band}.tif", data, from_origin(ulx, uly, 10, 10), None, None)
        if with_reference_maps:
            ref_path = root / "Reference_Maps" / S2_PRODUCT / patch_id / f"{patch_id}_reference_map.tif"
            _write(ref_path, ref_map, from_origin(ulx, uly, 10, 10), 0, "deflate")
        is_snow = i >= total - snow_cloud
        rows.append(
            {
                "patch_id": patch_id,
                "labels": labels,
                "split": split_of[i],
                "country": "Austria",
                "s1_name": s1_name,
                "s2v1_name": f"S2A_MSIL2A_20170613T101031_{col}_{row}",
                "contains_seasonal_snow": is_snow,
                "contains_cloud_or_shadow": False,
            }
        )
    frame = pd.DataFrame(rows)
    meta_dir = root / "metadata"
    meta_dir.mkdir(parents=True, exist_ok=True)
    clean, flagged = frame.loc[~frame["contains_seasonal_snow"]], frame.loc[frame["contains_seasonal_snow"]]
    metadata_path = meta_dir / "metadata.parquet"
    snow_path = meta_dir / "metadata_for_patches_with_snow_cloud_or_shadow.parquet"
    clean.to_parquet(metadata_path, index=False)
    flagged.to_parquet(snow_path, index=False)
    return BenV2Fixture(root, metadata_path, snow_path, clean.reset_index(drop=True), flagged.reset_index(drop=True))


def write_benv2_lmdb(root: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Encode a fixture tree (S1, S2 and reference maps) into an LMDB store with the real encoder (threads, quiet)."""
    from rsim.core.data.encode import encode_bigearthnet

    report = encode_bigearthnet(
        root, out, modalities=("S1", "S2", "reference_maps"), processes=False, n_workers=1, show_progress=False
    )
    return report.out
