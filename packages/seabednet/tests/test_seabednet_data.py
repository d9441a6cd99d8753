"""MagicBathyNet reader, palette decoding, splits, norm params and the device-side batch pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rsim.core.errors import DataFormatError
from rsim.seabednet.data.datamodule import MagicBathyNetDataModule
from rsim.seabednet.data.magicbathynet import (
    MagicBathyNetReader,
    decode_palette,
    encode_palette,
    read_split,
)
from rsim.seabednet.data.testing import AGIA_NAPA_IDS, write_magicbathynet


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_magicbathynet(
        tmp_path_factory.mktemp("mbn"),
        sites=("agia_napa", "puck_lagoon"),
        modalities=("spot6", "s2"),
        num_patches=5,
        seed=0,
    )


def test_layout_and_formats(root: Path) -> None:
    an = root / "agia_napa"
    for rel in ("spot6_split_bathymetry.txt", "s2_split_pixel_class.txt", "norm_param_spot6_an.txt"):
        assert (an / rel).is_file()
    assert (root / "puck_lagoon" / "norm_param_s2_pl.txt").is_file()
    pid = AGIA_NAPA_IDS[0]
    with rasterio.open(an / "img" / "spot6" / f"img_{pid}.tif") as src:
        assert (src.count, src.dtypes[0], src.width) == (3, "uint8", 30)
        assert src.crs is not None and src.transform.a == pytest.approx(6.0)
    with rasterio.open(an / "depth" / "spot6" / f"depth_{pid}.tif") as src:
        d = src.read(1)
        assert src.dtypes[0] == "float32" and (d < 0).any() and (d == 0).any() and d.max() <= 0
    with rasterio.open(an / "gts" / "s2" / f"gts_{pid}.tif") as src:
        assert (src.count, src.dtypes[0], src.width) == (3, "uint8", 18)


@pytest.mark.parametrize("site", ["agia_napa", "puck_lagoon"])
def test_palette_round_trip_and_unmatched(site: str) -> None:
    k = 5 if site == "agia_napa" else 3
    labels = np.arange(k * 4).reshape(4, k) % k
    rgb = encode_palette(labels, site)
    np.testing.assert_array_equal(decode_palette(rgb, site), labels)
    rgb[:, 0, 0] = (1, 128, 0)  # near-miss colour -> undefined
    assert decode_palette(rgb, site)[0, 0] == k - 1
    if site == "agia_napa":
        np.testing.assert_array_equal(
            decode_palette(np.array([[[0]], [[128]], [[0]]], np.uint8), site), [[0]]
        )  # seagrass green
    else:
        np.testing.assert_array_equal(decode_palette(np.array([[[0]], [[128]], [[0]]], np.uint8), site), [[1]])


def test_reader_values(root: Path) -> None:
    r = MagicBathyNetReader(root, "agia_napa", "spot6")
    pid = r.available_ids()[0]
    img, profile = r.read_image(pid)
    assert img.dtype == np.float32 and img.shape == (3, 30, 30) and profile["count"] == 3
    labels = r.read_labels(pid)
    assert labels.dtype == np.int64 and set(np.unique(labels)) <= set(range(5))
    np.testing.assert_allclose(r.norm_param(), [[0, 0, 0], [220, 230, 240]])
    train, test = r.split("pixel_class")
    assert test == ["411"] and len(train) == 4  # hard-coded Agia Napa test IDs
    train_b, test_b = r.split("bathymetry")
    assert len(test_b) == 1 and sorted(train_b + test_b) == sorted(train + test)


def test_split_formats(tmp_path: Path) -> None:
    p = tmp_path / "s.txt"
    p.write_text("train: ['img_1.tif', '2']\ntest: 3, 4\n")
    assert read_split(p) == (["1", "2"], ["3", "4"])
    p.write_text("5\n6\n")
    assert read_split(p) == (["5", "6"], None)
    p.write_text("\n")
    with pytest.raises(DataFormatError, match=r"s\.txt"):
        read_split(p)


def test_bad_inputs(root: Path, tmp_path: Path) -> None:
    r = MagicBathyNetReader(root, "puck_lagoon", "s2")
    with pytest.raises(FileNotFoundError, match=r"img_999\.tif"):
        r.read_image("999")
    bad = r.path("img", "1000")
    backup = bad.read_bytes()
    try:
        bad.write_bytes(b"garbage")
        with pytest.raises(DataFormatError, match=r"img_1000\.tif"):
            r.read_image("1000")
    finally:
        bad.write_bytes(backup)
    with pytest.raises(FileNotFoundError, match="site folder"):
        MagicBathyNetReader(tmp_path, "agia_napa", "s2")
    with pytest.raises(ValueError, match="unknown MagicBathyNet site"):
        MagicBathyNetReader(root, "atlantis", "s2")
    (tmp_path / "agia_napa").mkdir()
    (tmp_path / "agia_napa" / "norm_param_s2_an.txt").write_text("1 2 3\n0 0 0\n")
    with pytest.raises(DataFormatError, match="max row"):
        MagicBathyNetReader(tmp_path, "agia_napa", "s2").norm_param()


def test_datamodule_device_pipeline(root: Path) -> None:
    torch.manual_seed(0)
    dm = MagicBathyNetDataModule(root, "puck_lagoon", "spot6", batch_size=2, window_size=16, train_samples_per_epoch=4)
    dm.setup("fit")
    assert dm.num_classes == 3 and dm.undefined_index == 2 and dm.depth_scale == pytest.approx(11.0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 16, 16) and batch["image"].dtype == torch.float32
    raw_depth = batch["depth"].clone()
    out = dm.device_transform(batch, training=True)
    assert out["image"].shape == (2, 3, 256, 256) and out["label"].shape == (2, 256, 256)
    assert out["image"].min() >= 0 and out["image"].max() <= 1
    d = out["depth"][out["mask"]]
    assert d.numel() > 0 and (d > 0).all() and (d <= 1).all()
    assert (out["depth"][~out["mask"]] == 0).all()
    # the mask excludes no-label pixels: every raw zero depth is masked out after nearest upsampling (x16)
    zero = raw_depth == 0
    up = zero.repeat_interleave(16, -1).repeat_interleave(16, -2)
    eval_out = dm.device_transform({**batch, "depth": raw_depth}, training=False)
    assert not eval_out["mask"][up].any()
    # eval transform is deterministic and un-flipped: value matches the nearest-upsampled raw depth
    expect = (raw_depth / -11.0).repeat_interleave(16, -1).repeat_interleave(16, -2)
    torch.testing.assert_close(eval_out["depth"][eval_out["mask"]], expect[eval_out["mask"]])
