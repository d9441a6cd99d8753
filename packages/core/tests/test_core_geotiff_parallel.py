from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from core_paths import S2_CROP
from rsim.core.data.geotiff import GeoTiffPatchDataset, read_geotiff, valid_mask, write_geotiff
from rsim.core.errors import DataFormatError
from rsim.core.io import atomic_path
from rsim.core.parallel import dask_client, map_with_progress


def test_read_window_keeps_georeferencing() -> None:
    path = S2_CROP / "T18_B04.tif"
    full, profile = read_geotiff(path, expected_bands=1)
    assert full.shape == (1, 512, 512) and full.dtype == np.uint16
    part, sub = read_geotiff(path, window=rasterio.windows.Window(100, 50, 64, 32))
    np.testing.assert_array_equal(part, full[:, 50:82, 100:164])
    assert sub["transform"].c == 443580 + 100 * 10 and sub["transform"].f == 4174260 - 50 * 10
    assert sub["crs"] == profile["crs"] and sub["descriptions"] == ("B04",)
    with pytest.raises(DataFormatError, match=r"T18_B04.tif has 1 bands, expected 3"):
        read_geotiff(path, expected_bands=3)
    with pytest.raises(DataFormatError, match=r"band index\(es\) \[2\] out of range"):
        read_geotiff(path, bands=[2])
    with pytest.raises(FileNotFoundError, match="nope.tif"):
        read_geotiff(S2_CROP / "nope.tif")


def test_write_roundtrip_is_atomic(tmp_path: Path) -> None:
    array, profile = read_geotiff(S2_CROP / "T18_B8A.tif")
    out = write_geotiff(tmp_path / "x.tif", array.astype(np.float32) / 10000, profile, nodata=None)
    back, back_profile = read_geotiff(out)
    np.testing.assert_allclose(back * 10000, array, rtol=1e-6)
    assert back_profile["transform"] == profile["transform"] and back.dtype == np.float32
    assert [p.name for p in tmp_path.iterdir()] == ["x.tif"]
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "y.tif") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.tif"]


def test_patch_dataset_grid_edges_and_nodata(tmp_path: Path) -> None:
    array, profile = read_geotiff(S2_CROP / "T18_B01.tif")  # 86×86
    array[:, :5, :5] = 0
    path = write_geotiff(tmp_path / "b01.tif", array, profile, nodata=0)
    dataset = GeoTiffPatchDataset(path, patch_size=32, stride=32, expected_bands=1)
    assert len(dataset) == 9  # starts 0, 32, 54 in each direction (last aligned to the edge)
    first = dataset[0]
    assert first["image"].shape == (1, 32, 32) and not first["valid"][:5, :5].any() and first["valid"][5:, 5:].all()
    last = dataset.location(len(dataset) - 1)
    assert (last.window.col_off, last.window.row_off) == (54, 54)
    assert last.transform.c == profile["transform"].c + 54 * 60
    small = GeoTiffPatchDataset(path, patch_size=100)
    sample = small[0]
    assert (
        sample["image"].shape == (1, 100, 100) and not sample["valid"][86:].any() and not sample["valid"][:, 86:].any()
    )
    with pytest.raises(DataFormatError, match="expected 4"):
        GeoTiffPatchDataset(path, 32, expected_bands=4)
    nan = np.array([[[np.nan, 1.0], [2.0, 3.0]]], dtype=np.float32)
    assert valid_mask(nan, None).tolist() == [[False, True], [True, True]]


def test_map_with_progress_keeps_order() -> None:
    with dask_client(n_workers=1, processes=False) as client:
        assert map_with_progress(abs, [-3, 1, -2], client=client, description="abs", show_progress=False) == [
            3,
            1,
            2,
        ]


def _fails_with_gdal_cause(item: int) -> int:
    import rasterio

    try:
        rasterio.open(f"/nonexistent/{item}.tif")
    except rasterio.errors.RasterioIOError as exc:
        raise DataFormatError(f"item {item}: cannot read it") from exc
    return item


def test_worker_errors_keep_type_and_message() -> None:
    with dask_client(n_workers=1, processes=False) as client, pytest.raises(DataFormatError, match="item 7: cannot"):
        map_with_progress(_fails_with_gdal_cause, [7], client=client, description="x", show_progress=False)


def test_raster_centre_in_wgs84_on_real_patches(tmp_path: Path) -> None:
    from core_paths import BENV2, S2_SAMPLE
    from rsim.core.data import BigEarthNetV2Tree
    from rsim.core.data.geotiff import raster_centre_wgs84

    lat, lon = raster_centre_wgs84(BigEarthNetV2Tree(BENV2).band_file(S2_SAMPLE, "B02"))
    assert abs(lat - 48.2739) < 1e-4 and abs(lon - 13.5256) < 1e-4  # UTM 33N (390600, 5347800)
    array, profile = read_geotiff(S2_CROP / "T18_B02.tif")
    lat, lon = raster_centre_wgs84(S2_CROP / "T18_B02.tif")
    assert 37.0 < lat < 38.5 and -76.5 < lon < -75.0  # Virginia Eastern Shore, UTM 18N
    profile["crs"] = None
    bare = write_geotiff(tmp_path / "nocrs.tif", array, profile)
    with pytest.raises(DataFormatError, match="has no CRS"):
        raster_centre_wgs84(bare)
