from pathlib import Path

import numpy as np
import pytest
import torch
from pyproj import Geod
from rsim.core.data.bigearthnet import BigEarthNetV2Tree
from rsim.core.errors import DataFormatError, MissingKeyError
from rsim.core.testing import write_benv2_fixture
from rsim.georank.data import (
    BigEarthNetGeoDataModule,
    PercentileStandardize,
    SSL4EODataModule,
    SSL4EOS12Tree,
    ViewAugment,
    Views,
    benv2_coordinates,
    cardinality_subset,
    raster_centre_wgs84,
    read_coordinates,
    write_coordinates,
)
from rsim.georank.data.ssl4eo import SSL4EOS12Dataset
from rsim.georank.data.testing import write_ssl4eo_fixture
from rsim.georank.geo import haversine_km

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
BENV2 = DATA / "benv2"
V1 = DATA / "benv1-examples" / "BigEarthNet-S2-Example"
PATCH = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43"


@pytest.mark.skipif(not BENV2.is_dir(), reason="shared sample data absent")
def test_real_benv2_patch_centre():
    tree = BigEarthNetV2Tree(BENV2)
    lat, lon = raster_centre_wgs84(tree.band_file(PATCH, "B02"))
    # T33UUP_75_43: centre (390600, 5347800) in UTM 33N, ~109 km west of the 15°E meridian, Upper Austria
    assert lat == pytest.approx(48.27, abs=0.05) and lon == pytest.approx(13.52, abs=0.05)
    for band in ("B05", "B01"):  # 20 m and 60 m files share the footprint
        assert raster_centre_wgs84(tree.band_file(PATCH, band)) == pytest.approx((lat, lon), abs=1e-9)
    # one patch east (+1200 m) and one south (-1200 m) of its neighbour, by the patch-name geometry
    assert benv2_coordinates(BENV2, [PATCH])[0] == pytest.approx([lat, lon])


@pytest.mark.skipif(not V1.is_dir(), reason="shared sample data absent")
def test_real_cross_zone_distances():
    folders = sorted(p for p in V1.iterdir() if p.is_dir())
    centres = np.array([raster_centre_wgs84(next(f.glob("*_B02.tif"))) for f in folders])
    ours = haversine_km(torch.tensor(centres, dtype=torch.float64)).numpy()
    wgs84 = Geod(ellps="WGS84")
    zones = set()
    for f in folders:
        import rasterio

        with rasterio.open(next(f.glob("*_B02.tif"))) as src:
            zones.add(src.crs.to_epsg())
    assert zones == {32629, 32633, 32635}
    for i in range(len(centres)):
        for j in range(i + 1, len(centres)):
            d = wgs84.inv(centres[i, 1], centres[i, 0], centres[j, 1], centres[j, 0])[2] / 1000
            assert ours[i, j] == pytest.approx(d, rel=6e-3)  # sphere vs ellipsoid
    assert ours.max() > 2000  # Portugal/Ireland to Finland


def test_benv2_fixture_coordinates_with_dask_match_name_geometry(tmp_path):
    from pyproj import Transformer
    from rsim.core.parallel import dask_client

    fx = write_benv2_fixture(tmp_path / "ben", splits={"train": 3, "validation": 1, "test": 1}, snow_cloud=0)
    ids = list(fx.metadata["patch_id"])
    with dask_client(n_workers=1, processes=False) as client:
        got = benv2_coordinates(fx.root, ids, client=client, chunk_size=2)
    to_ll = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    for pid, (lat, lon) in zip(ids, got, strict=True):
        c, r = (int(v) for v in pid.rsplit("_", 2)[1:])
        elon, elat = to_ll.transform(300000 + 1200 * c + 600, 5400000 - 1200 * r - 600)
        assert (lat, lon) == pytest.approx((elat, elon), abs=1e-9)
    out = write_coordinates(tmp_path / "coords.parquet", ids, got)
    np.testing.assert_array_equal(read_coordinates(out, ids[::-1]), got[::-1])
    with pytest.raises(MissingKeyError, match="no coordinates"):
        read_coordinates(out, ["nope"])
    with pytest.raises(FileNotFoundError, match="georank coords"):
        read_coordinates(tmp_path / "absent.parquet", ids)


def test_bad_rasters(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        raster_centre_wgs84(tmp_path / "x.tif")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00garbage")
    with pytest.raises(DataFormatError, match="bad.tif"):
        raster_centre_wgs84(bad)


def test_ssl4eo_reader_fixture(tmp_path):
    centres = write_ssl4eo_fixture(tmp_path, num_locations=4, num_timestamps=3, size=12)
    tree = SSL4EOS12Tree(tmp_path)
    assert tree.locations == ["0000000", "0000001", "0000002", "0000003"]
    assert len(tree.timestamps("0000000")) == 3
    for i, loc in enumerate(tree.locations):
        assert tree.centre(loc) == pytest.approx(centres[i], abs=1e-7)
    ds = SSL4EOS12Dataset(tree, ["B02", "B05", "B01"], temporal_views=True)
    s = ds[1]
    assert (
        s["bands"]["B02"].shape == (12, 12) and s["bands"]["B05"].shape == (6, 6) and s["bands"]["B01"].shape == (2, 2)
    )
    assert "bands_t2" in s and not np.array_equal(s["bands"]["B02"], s["bands_t2"]["B02"])
    assert s["coords"] == pytest.approx(centres[1], abs=1e-7)
    # corrupt a band's size and delete another
    stamp = tree.timestamps("0000002")[0]
    import rasterio

    path = tree.band_file("0000002", stamp, "B05")
    with rasterio.open(path) as src:
        profile = src.profile
    profile.update(height=5, width=5)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.ones((1, 5, 5), dtype=np.uint16))
    with pytest.raises(DataFormatError, match="B05"):
        tree.read("0000002", stamp, ["B02", "B05"])
    tree.band_file("0000003", stamp.replace(stamp, tree.timestamps("0000003")[0]), "B03").unlink()
    with pytest.raises(FileNotFoundError, match="B03"):
        tree.read("0000003", tree.timestamps("0000003")[0], ["B03"])
    with pytest.raises(FileNotFoundError, match="s2c"):
        SSL4EOS12Tree(tmp_path, "s2c")


def test_cardinality_subsets():
    a = cardinality_subset(1000, 0.1, 0)
    assert len(a) == 100 and np.array_equal(a, cardinality_subset(1000, 0.1, 0))
    assert not np.array_equal(a, cardinality_subset(1000, 0.1, 1))
    assert len(cardinality_subset(50, 0.01)) == 1 and len(cardinality_subset(7, 1.0)) == 7
    with pytest.raises(ValueError, match="fraction"):
        cardinality_subset(10, 0.0)


def test_normalisation_and_views():
    norm = PercentileStandardize.for_bands(["B02", "B03"], mean=[0.1, 0.2], std=[0.5, 0.25])
    x = torch.full((1, 2, 4, 4), 2824.0)
    x[:, 1] = 2802.0 * 0.7
    y = norm(x)
    assert torch.allclose(y[:, 0], torch.full((1, 4, 4), (1 - 0.1) / 0.5))
    assert torch.allclose(y[:, 1], torch.full((1, 4, 4), (0.7 - 0.2) / 0.25))
    with pytest.raises(KeyError, match="B01"):
        PercentileStandardize.for_bands(["B01"])
    with pytest.raises(ValueError, match="both mean and std"):
        PercentileStandardize([1.0], mean=[0.0])
    torch.manual_seed(0)
    aug = ViewAugment(
        8, extra=["brightness", "gaussian_blur", "solarize", "grid_shuffle", "cutout", "shear"], extra_p=1.0
    )
    v = aug(torch.rand(3, 10, 16, 16))
    assert v.shape == (3, 10, 8, 8)
    with pytest.raises(ValueError, match="unknown augmentation"):
        ViewAugment(8, extra=["sepia"])


def test_ssl4eo_datamodule_views(tmp_path):
    write_ssl4eo_fixture(tmp_path, num_locations=6, num_timestamps=2, size=24)
    dm = SSL4EODataModule(
        str(tmp_path),
        img_size=16,
        temporal_views=True,
        batch_size=4,
        num_workers=0,
        subset_fraction=0.5,
        views=Views(num_global=2, num_local=2, local_size=8),
    )
    dm.setup("fit")
    assert dm.dataset is not None and len(dm.dataset) == 3
    batch = next(iter(dm.train_dataloader()))
    out = dm.transform_batch(batch, train=True)
    assert [tuple(v.shape) for v in out["views"]] == [(3, 10, 16, 16)] * 2 + [(3, 10, 8, 8)] * 2
    assert out["coords"].shape == (3, 2) and out["coords"].dtype == torch.float64
    assert out["image"].shape == (3, 10, 16, 16)


def test_benv2_geo_datamodule(tmp_path):
    fx = write_benv2_fixture(tmp_path / "ben", splits={"train": 4, "validation": 2, "test": 1}, snow_cloud=0)
    dm = BigEarthNetGeoDataModule(
        root=str(fx.root),
        img_size=32,
        batch_size=4,
        num_workers=0,
        subset_fraction=0.5,
        views=Views(crop_scale=(0.5, 1.0)),
    )
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert len(loader.dataset) == 2
    out = dm.transform_batch(next(iter(loader)), train=True)
    assert len(out["views"]) == 2 and out["views"][0].shape == (2, 10, 32, 32)
    assert out["label"].shape == (2, 19) and out["coords"].shape == (2, 2)
    lat, lon = out["coords"][0].tolist()
    assert 47 < lat < 49 and 12 < lon < 14  # tile T33UUP, Upper Austria


def test_posterize_and_pixel_drop_are_batchwise_seeded_and_range_safe():
    from rsim.georank.data.transforms import RandomPixelDrop, RangePosterize

    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 10, 16, 16, generator=g) * 3 + 5  # standardised-like data far outside [0, 1]
    post = RangePosterize(bits=2, p=1.0)(x)
    for i in range(4):  # at most 2**2 levels per sample and channel, inside the sample's own range
        for c in (0, 9):
            assert len(torch.unique(post[i, c])) <= 4
            assert float(post[i, c].min()) >= float(x[i, c].min()) - 1e-5
            assert float(post[i, c].max()) <= float(x[i, c].max()) + 1e-5
    assert float((post - x).abs().mean()) > 0.1
    torch.testing.assert_close(RangePosterize(bits=8, p=1.0)(x), x, atol=float(x.max() - x.min()) / 255, rtol=0)
    drop = RandomPixelDrop(drop_prob=0.25, p=1.0)
    torch.manual_seed(1)
    a = drop(x)
    torch.manual_seed(1)
    b = drop(x)
    assert torch.equal(a, b)  # seeded
    zero = (a == 0).all(dim=1)  # one mask for all bands of a sample
    assert 0.15 < float(zero.float().mean()) < 0.35 and torch.equal((a == 0).any(dim=1), zero)
    assert torch.equal(a[~zero.unsqueeze(1).expand_as(a)], x[~zero.unsqueeze(1).expand_as(x)])
    per_c = RandomPixelDrop(drop_prob=0.25, per_channel=True, p=1.0)(x)
    assert not torch.equal((per_c == 0).all(dim=1), (per_c == 0).any(dim=1))
    half = RandomPixelDrop(drop_prob=0.5, p=0.5)(torch.ones(64, 1, 8, 8))  # p gates whole samples
    untouched = (half == 1).all(dim=(1, 2, 3))
    assert 10 < int(untouched.sum()) < 54
    with pytest.raises(ValueError, match="pixel drop"):
        RandomPixelDrop(drop_prob=1.5)
    view = ViewAugment(8, extra=["posterize", "pixel_drop"], extra_p=1.0)
    assert view(x).shape == (4, 10, 8, 8)


@pytest.mark.skipif(not BENV2.is_dir(), reason="shared sample data absent")
def test_patch_name_coordinates_match_real_georeferencing():
    from rsim.georank.data.coords import patch_name_coordinates, s2_tile_origin

    tree = BigEarthNetV2Tree(BENV2)
    # the real T33UUP file and its name agree exactly (tile origin 300000, 5400000, EPSG:32633)
    assert patch_name_coordinates([PATCH])[0] == pytest.approx(raster_centre_wgs84(tree.band_file(PATCH, "B02")))
    assert s2_tile_origin("33UUP") == (32633, 300000.0, 5400000.0)
    assert s2_tile_origin("29SND")[0] == 32629 and s2_tile_origin("55HFA")[0] == 32755  # southern hemisphere
    x0 = s2_tile_origin("31UDQ")[1]
    assert x0 % 60 == 0 and 399900 < x0 <= 400000
    with pytest.raises(DataFormatError, match="_T<tile>"):
        patch_name_coordinates(["S2A_MSIL2A_20170613T101031_0_45"])  # a v1 name carries no tile
    with pytest.raises(ValueError, match="tile"):
        s2_tile_origin("33UU")


def test_lmdb_pretraining_with_coordinates_from_metadata(tmp_path):
    import pandas as pd
    from lightning.pytorch import Trainer
    from rsim.core.testing import write_benv2_lmdb
    from rsim.georank.tasks import BYOL, GeoRankConfig

    fx = write_benv2_fixture(tmp_path / "ben", splits={"train": 4, "validation": 1, "test": 1}, snow_cloud=0)
    store = write_benv2_lmdb(fx.root, tmp_path / "ben.lmdb")
    ids = sorted(fx.metadata.loc[fx.metadata["split"] == "train", "patch_id"])
    from_tiffs = benv2_coordinates(fx.root, ids)
    # LMDB alone (no GeoTIFF tree): coordinates from the patch names + MGRS tile origin
    dm = BigEarthNetGeoDataModule(lmdb=str(store), metadata=str(fx.metadata_path), img_size=32, batch_size=4,
                                  num_workers=0, pin_memory=False, views=Views(crop_scale=(0.5, 1.0)))  # fmt: skip
    dm.setup("fit")
    table = dm.datasets["train"].table
    order = [ids.index(str(k)) for k in table.s2_keys]
    np.testing.assert_allclose(dm.train_coordinates(), from_tiffs[order], atol=1e-9)
    batch = dm.transform_batch(next(iter(dm.train_dataloader())), train=True)
    assert batch["views"][0].shape == (4, 10, 32, 32) and batch["coords"].shape == (4, 2)
    # metadata parquet with patch-centre columns (BigEarthNet.txt style): those win in "auto"
    meta = pd.read_parquet(fx.metadata_path)
    meta["latitude"], meta["longitude"] = 40.0 + np.arange(len(meta)), 5.0 + np.arange(len(meta))
    meta_path = tmp_path / "metadata_latlon.parquet"
    meta.to_parquet(meta_path, index=False)
    dm2 = BigEarthNetGeoDataModule(lmdb=str(store), metadata=str(meta_path), img_size=32, batch_size=4, num_workers=0,
                                   pin_memory=False)  # fmt: skip
    dm2.setup("fit")
    expect = meta.set_index("patch_id").loc[[str(k) for k in dm2.datasets["train"].table.s2_keys]]
    np.testing.assert_array_equal(dm2.train_coordinates(), expect[["latitude", "longitude"]].to_numpy())
    with pytest.raises(DataFormatError, match="no latitude/longitude"):
        BigEarthNetGeoDataModule(lmdb=str(store), metadata=str(fx.metadata_path), coords_source="metadata",
                                 num_workers=0).setup("fit")  # fmt: skip
    with pytest.raises(ValueError, match="coords_source"):
        BigEarthNetGeoDataModule(lmdb=str(store), metadata=str(fx.metadata_path), coords_source="gps")  # type: ignore[arg-type]
    # one pretraining step from the LMDB store
    torch.manual_seed(0)
    model = BYOL(backbone="resnet10t", in_channels=10, georank=GeoRankConfig(soft_rank_eps=1.0), proj_hidden_dim=32,
                 proj_dim=16, pred_hidden_dim=32)  # fmt: skip
    trainer = Trainer(accelerator="cpu", max_steps=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model, dm)
    assert float(trainer.callback_metrics["train/georank"]) > 0
