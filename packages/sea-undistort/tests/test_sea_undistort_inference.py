import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin
from rsim.core.data.geotiff import read_geotiff, write_geotiff
from rsim.core.errors import DataFormatError
from rsim.sea_undistort.inference import restore_array, restore_geotiff
from rsim.sea_undistort.masks import ThresholdMaskProvider, mask_for


def _identity(lq, mask):
    return lq


def test_tiled_identity_and_blending():
    rng = np.random.default_rng(0)
    img = rng.random((70, 53, 3)).astype(np.float32)
    mask = np.zeros((70, 53), np.float32)
    for tile, overlap in [(32, 8), (16, 0), (128, 16)]:
        out = restore_array(img, mask, _identity, tile=tile, overlap=overlap, batch_size=3)
        assert out.shape == img.shape and np.allclose(out, img, atol=1e-6)
    calls = []

    def tile_id(lq, mk):  # each tile returns its own constant: the blend must give a smooth mix in overlaps
        calls.append(lq.shape[0])
        return torch.ones_like(lq) * torch.arange(1, lq.shape[0] + 1).view(-1, 1, 1, 1).float()

    out = restore_array(img, mask, tile_id, tile=32, overlap=8, batch_size=1)
    assert out.min() >= 1 and np.allclose(out[:20, :20], 1)
    with pytest.raises(ValueError, match="overlap"):
        restore_array(img, mask, _identity, tile=16, overlap=8)


def test_threshold_mask_provider_finds_glint():
    rgb = np.full((64, 64, 3), 90, np.uint8)
    rgb[30:34, 30:34] = 200  # a small bright glint patch
    rgb[10, 50] = 130  # +40 grey levels: inside the soft ramp
    m = ThresholdMaskProvider()(rgb)
    assert m[31, 31] == 1.0 and m[0, 0] == 0.0 and 0 < m[10, 50] < 1
    assert (m > 0).sum() < 30
    assert np.array_equal(mask_for(rgb), m)


def test_restore_geotiff_keeps_georeferencing(tmp_path):
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 255, (3, 40, 50), dtype=np.uint8)
    profile = {"crs": "EPSG:32636", "transform": from_origin(500000, 3870000, 0.05, 0.05), "nodata": None,
               "dtype": "uint8", "count": 3, "height": 40, "width": 50}  # fmt: skip
    src = write_geotiff(tmp_path / "in.tif", arr, profile)

    def darken(lq, mask):
        return lq * 0.5

    info = restore_geotiff(src, tmp_path / "out.tif", darken, tile=32, overlap=4)
    out, _prof = read_geotiff(tmp_path / "out.tif")
    assert out.dtype == np.uint8 and out.shape == arr.shape and info["height"] == 40
    assert np.abs(out.astype(int) - np.rint(arr / 2).astype(int)).max() <= 1
    with rasterio.open(tmp_path / "out.tif") as ds:
        assert ds.crs.to_epsg() == 32636 and ds.transform == profile["transform"]
    write_geotiff(tmp_path / "two.tif", arr[:2], {**profile, "count": 2})
    with pytest.raises(DataFormatError, match="3 RGB bands|band index"):
        restore_geotiff(tmp_path / "two.tif", tmp_path / "x.tif", darken)
    with pytest.raises(FileNotFoundError, match="missing.tif"):
        restore_geotiff(tmp_path / "missing.tif", tmp_path / "x.tif", darken)
