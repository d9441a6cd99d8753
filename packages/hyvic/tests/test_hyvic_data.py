from pathlib import Path

import numpy as np
import pytest
import torch
from rsim.core.errors import DataFormatError
from rsim.hyvic.data.datamodule import HyperspectralDataModule, RasterPatchDataset
from rsim.hyvic.data.formats import (
    HYSPECNET_BANDS,
    HYSPECNET_KEPT_BANDS,
    convert_hyspecnet_patch,
    hyspecnet_files,
    hyspecnet_to_reflectance,
    read_hyspecnet_npy,
    read_hyspecnet_tif,
    read_mlretset_mat,
    read_s2_folder,
    read_split_csv,
)
from rsim.hyvic.data.testing import write_geotiff_fixture, write_hyspecnet_fixture, write_mlretset_fixture

S2 = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "s2-l1c-crop"


def test_water_vapour_bands_dropped():
    assert HYSPECNET_BANDS == 202
    dropped = sorted(set(range(224)) - set(HYSPECNET_KEPT_BANDS))
    assert dropped == list(range(126, 141)) + list(range(160, 167))  # 0-based
    raw = np.arange(224, dtype=np.int16)[:, None, None] * np.ones((1, 2, 2), np.int16) * 50 - 100
    out = hyspecnet_to_reflectance(raw)
    assert out.shape == (202, 2, 2) and out.dtype == np.float32
    assert out[0, 0, 0] == 0.0  # -100 clipped to 0
    assert out[126, 0, 0] == pytest.approx((141 * 50 - 100) / 10000)  # kept index 126 is raw 0-based band 141
    t = hyspecnet_to_reflectance(torch.from_numpy(raw))
    assert torch.allclose(t, torch.from_numpy(out))
    with pytest.raises(DataFormatError, match="224 bands"):
        hyspecnet_to_reflectance(raw[:200])


def test_hyspecnet_fixture_tif_and_npy_agree(tmp_path):
    root = write_hyspecnet_fixture(tmp_path / "hsn", tiles=2, patches_per_tile=2, size=16)
    train = hyspecnet_files(root, "easy", "train")
    assert len(train) == 2 and all(p.name.endswith("-DATA.npy") for p in train)
    tifs = hyspecnet_files(root, "easy", "train", source="tif")
    raw = read_hyspecnet_tif(tifs[0])
    assert raw.shape == (224, 16, 16) and raw.dtype == np.int16
    npy = read_hyspecnet_npy(train[0])
    assert np.array_equal(npy, hyspecnet_to_reflectance(raw))
    out = convert_hyspecnet_patch(tifs[0])
    assert out == train[0] and np.array_equal(np.load(out), npy)
    hard = {s: hyspecnet_files(root, "hard", s) for s in ("train", "val", "test")}
    tiles = {s: {p.parts[-3] for p in f} for s, f in hard.items()}
    assert tiles["test"].isdisjoint(tiles["train"])  # tile-wise split
    assert read_split_csv(root / "splits" / "easy" / "val.csv")[0].startswith("tile_")


def test_hyspecnet_errors(tmp_path):
    root = write_hyspecnet_fixture(tmp_path / "hsn", tiles=1, patches_per_tile=2, size=8)
    npy = hyspecnet_files(root, "easy", "train")[0]
    np.save(npy, np.zeros((10, 8, 8), np.float32))
    with pytest.raises(DataFormatError, match=r"DATA\.npy: expected shape \(202"):
        read_hyspecnet_npy(npy)
    bad = np.zeros((202, 8, 8), np.float32)
    bad[0, 0, 0] = np.nan
    np.save(npy, bad)
    with pytest.raises(DataFormatError, match="NaN"):
        read_hyspecnet_npy(npy)
    with pytest.raises(ValueError, match="split_mode"):
        hyspecnet_files(root, "medium", "train")
    with pytest.raises(FileNotFoundError, match=r"splits/easy/nope\.csv"):
        hyspecnet_files(root, "easy", "nope")
    tif = write_geotiff_fixture(tmp_path / "x-SPECTRAL_IMAGE.TIF", bands=3, height=8, width=8)
    with pytest.raises(DataFormatError, match="expected 224 bands"):
        read_hyspecnet_tif(tif)


def test_mlretset_reader(tmp_path):
    root = write_mlretset_fixture(tmp_path / "mlr", images=3, size=12, bands=369)
    import scipy.io

    mat = scipy.io.loadmat(root / "data" / "0001_ankara.mat")["img"]
    arr = read_mlretset_mat(root / "data" / "0001_ankara.mat")
    assert arr.shape == (369, 12, 12) and arr.dtype == np.float32
    assert np.allclose(arr[5], mat[:, :, 5])
    with pytest.raises(DataFormatError, match="expected \\(H, W, 100\\)"):
        read_mlretset_mat(root / "data" / "0001_ankara.mat", bands=100)
    with pytest.raises(DataFormatError, match="key 'nope' absent"):
        read_mlretset_mat(root / "data" / "0001_ankara.mat", key="nope")
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(DataFormatError, match=r"junk\.mat"):
        read_mlretset_mat(tmp_path / "junk.mat")


def test_datamodule_hyspecnet_tif_scaled_on_device(tmp_path):
    root = write_hyspecnet_fixture(tmp_path / "hsn", tiles=2, patches_per_tile=2, size=16)
    dm = HyperspectralDataModule(dataset="hyspecnet", root=str(root), source="tif", crop_size=8, batch_size=2)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].dtype == torch.int16 and batch["image"].shape == (
        2,
        224,
        16,
        16,
    )  # raw from workers
    out = dm.on_after_batch_transfer(batch, 0)
    assert out["image"].shape == (2, 202, 8, 8) and out["image"].dtype == torch.float32
    full = hyspecnet_to_reflectance(batch["image"])
    assert torch.equal(out["image"], full[..., 4:12, 4:12])  # no trainer: centre crop


def test_datamodule_mlretset(tmp_path):
    root = write_mlretset_fixture(tmp_path / "mlr", images=3, size=12, bands=369)
    dm = HyperspectralDataModule(dataset="mlretset", root=str(root), crop_size=8, scale=1.0, batch_size=1)
    out = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    assert out["image"].shape == (1, 369, 8, 8) and float(out["image"].max()) <= 1.0


def test_raster_patches_split(tmp_path):
    tif = write_geotiff_fixture(tmp_path / "r.tif", bands=3, height=64, width=32)
    tr = RasterPatchDataset(tif, 16, "train", val_fraction=0.25)
    va = RasterPatchDataset(tif, 16, "val", val_fraction=0.25)
    assert len(tr) == 6 and len(va) == 2
    assert tr[0]["image"].dtype == np.uint16 and tr[0]["image"].shape == (3, 16, 16)
    with pytest.raises(DataFormatError, match="smaller than patch_size"):
        RasterPatchDataset(tif, 128)


@pytest.mark.skipif(not S2.is_dir(), reason="shared sample data absent")
def test_real_s2_folder_grids():
    r10 = read_s2_folder(S2, grid=10)
    assert r10.data.shape == (4, 512, 512) and r10.band_names == ["B02", "B03", "B04", "B08"]
    assert r10.data.dtype == np.uint16 and r10.profile["transform"][0] == 10.0
    r20 = read_s2_folder(S2, grid=20)
    assert r20.data.shape == (10, 256, 256) and "B8A" in r20.band_names and "B01" not in r20.band_names
    b08 = r10.data[3].astype(np.float64).reshape(256, 2, 256, 2).mean((1, 3))
    assert np.array_equal(r20.data[r20.band_names.index("B08")], np.round(b08).astype(np.uint16))
    with pytest.raises(DataFormatError, match="B01"):
        read_s2_folder(S2, grid=10, bands=["B01"])
