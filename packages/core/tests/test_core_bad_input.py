from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from core_paths import BENV2, S2_SAMPLE
from rsim.core.data import BigEarthNetDataModule, BigEarthNetV2Tree
from rsim.core.data.bigearthnet import load_metadata
from rsim.core.errors import DataFormatError


@pytest.fixture()
def tree_copy(tmp_path: Path) -> BigEarthNetV2Tree:
    shutil.copytree(BENV2 / "BigEarthNet-S2", tmp_path / "BigEarthNet-S2")
    return BigEarthNetV2Tree(tmp_path)


def test_missing_band_file(tree_copy: BigEarthNetV2Tree) -> None:
    tree_copy.band_file(S2_SAMPLE, "B8A").unlink()
    with pytest.raises(FileNotFoundError, match=rf"patch {S2_SAMPLE}: band B8A file .*_B8A.tif is missing"):
        tree_copy.read_s2(S2_SAMPLE, ["B02", "B8A"])


def test_missing_patch_folder(tree_copy: BigEarthNetV2Tree) -> None:
    with pytest.raises(FileNotFoundError, match=r"patch S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_00_00: S2 folder"):
        tree_copy.read_s2("S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_00_00", ["B02"])


@pytest.mark.parametrize("keep", [0, 200, 8000])
def test_truncated_or_corrupt_tiff(tree_copy: BigEarthNetV2Tree, keep: int) -> None:
    path = tree_copy.band_file(S2_SAMPLE, "B04")
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep else b"this is not a tiff" * 10)
    with pytest.raises(DataFormatError, match=rf"patch {S2_SAMPLE}: cannot read .*_B04.tif"):
        tree_copy.read_s2(S2_SAMPLE, ["B04"])


def _rewrite(path: Path, array: np.ndarray) -> None:
    with rasterio.open(path) as src:
        profile = src.profile
    profile.update(
        count=array.shape[0], height=array.shape[1], width=array.shape[2], dtype=array.dtype.name, nodata=None
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array)


def test_wrong_band_count(tree_copy: BigEarthNetV2Tree) -> None:
    path = tree_copy.band_file(S2_SAMPLE, "B02")
    _rewrite(path, np.zeros((2, 120, 120), dtype=np.uint16))
    with pytest.raises(DataFormatError, match=rf"patch {S2_SAMPLE}: .*_B02.tif has 2 bands, expected 1"):
        tree_copy.read_s2(S2_SAMPLE, ["B02"])


def test_wrong_dtype(tree_copy: BigEarthNetV2Tree) -> None:
    path = tree_copy.band_file(S2_SAMPLE, "B02")
    _rewrite(path, np.zeros((1, 120, 120), dtype=np.float32))
    with pytest.raises(DataFormatError, match=r"_B02.tif has dtype float32, expected uint16 for band B02"):
        tree_copy.read_s2(S2_SAMPLE, ["B02"])


def test_wrong_size(tree_copy: BigEarthNetV2Tree) -> None:
    path = tree_copy.band_file(S2_SAMPLE, "B05")
    _rewrite(path, np.zeros((1, 120, 120), dtype=np.uint16))
    with pytest.raises(DataFormatError, match=r"_B05.tif is 120×120 px, expected 60×60 for band B05 at 20 m"):
        tree_copy.read_s2(S2_SAMPLE, ["B05"])


def test_corrupt_or_incomplete_metadata(tmp_path: Path) -> None:
    bad = tmp_path / "metadata.parquet"
    bad.write_bytes(b"PAR1 garbage")
    with pytest.raises(DataFormatError, match="metadata.parquet is not a readable parquet"):
        load_metadata(bad)
    load_metadata(BENV2 / "metadata" / "metadata.parquet").drop(columns=["s1_name"]).to_parquet(bad)
    with pytest.raises(DataFormatError, match=r"lacks column\(s\) \['s1_name'\]"):
        load_metadata(bad)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no metadata.parquet"):
        BigEarthNetDataModule(root=str(empty), num_workers=0).setup("validate")
