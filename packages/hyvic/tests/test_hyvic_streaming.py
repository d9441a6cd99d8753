"""`hyvic rd` / `select --models` stream window reads; `convert-hyspecnet` on the official layout."""

import json

import numpy as np
import pytest
import rasterio
import torch
from rsim.core.metrics import psnr, spectral_angle
from rsim.hyvic import codec
from rsim.hyvic.checkpoint import load_model, save_model
from rsim.hyvic.cli import main
from rsim.hyvic.codec import decode_to_array, open_source, quantised_forward
from rsim.hyvic.data.formats import hyspecnet_files, hyspecnet_to_reflectance, read_hyspecnet_tif
from rsim.hyvic.data.testing import write_geotiff_fixture, write_hyspecnet_fixture
from rsim.hyvic.evaluate import rd_point
from rsim.hyvic.models.hyvic import HyVIC, HyVICConfig


def small_model(path, c=5, m=6, seed=0):
    torch.manual_seed(seed)
    save_model(path, HyVIC(HyVICConfig(in_channels=c, num_stages=0, width=8, latent_channels=m, depths=[], heads=[])))
    return load_model(path)


@pytest.fixture
def window_log(monkeypatch):
    """Record every window the codec reads from a raster file."""
    log = []
    orig = codec.GeoTiffSource.read

    def read(self, row, col, height, width):
        log.append((height, width))
        return orig(self, row, col, height, width)

    monkeypatch.setattr(codec.GeoTiffSource, "read", read)
    return log


@pytest.mark.parametrize("driver", ["GTiff", "ENVI"])
def test_rd_point_streams_windows_and_matches_whole_image_metrics(tmp_path, window_log, driver):
    name = "img.tif" if driver == "GTiff" else "img.img"
    img = write_geotiff_fixture(tmp_path / name, bands=5, height=72, width=56, driver=driver)
    model = small_model(tmp_path / "m.pt")
    p = rd_point(model, img, tile=16)
    assert window_log and max(h for h, _ in window_log) <= 16 and max(w for _, w in window_log) <= 16
    # Reference: whole-image arrays and the rsim-core metrics.
    codec.compress_file(model, img, tmp_path / "x.hyv", tile=16)
    x_hat, _ = decode_to_array(model, tmp_path / "x.hyv")
    with rasterio.open(img) as ds:
        x = np.clip(ds.read().astype(np.float32) / 10000, 0, 1)
    xt, xh = torch.from_numpy(x)[None], torch.from_numpy(x_hat)[None]
    assert p["psnr"] == pytest.approx(float(psnr(xh, xt)), abs=1e-4)
    assert p["sa"] == pytest.approx(float(spectral_angle(xh, xt)), rel=1e-5)
    with open_source(img) as src:
        _, bits = quantised_forward(model, src, tile=16)
    assert p["bpppc_likelihood"] == pytest.approx(bits / x.size, rel=1e-6)
    assert p["bytes"] == (tmp_path / "x.hyv").stat().st_size


def test_rd_and_select_verbs_stream_a_generated_raster(tmp_path, window_log, capsys):
    img = write_geotiff_fixture(tmp_path / "img.tif", bands=5, height=64, width=48)
    files = []
    for i, m in enumerate((2, 4)):
        small_model(tmp_path / f"m{i}.pt", m=m, seed=i)
        files.append(str(tmp_path / f"m{i}.pt"))
    out = tmp_path / "rd.json"
    assert main(["rd", "--models", *files, "--input", str(img), "--tile", "16", "--out", str(out)]) == 0
    assert {(h, w) for h, w in window_log} == {(16, 16)}
    assert len(json.loads(out.read_text())["points"]) == 2
    window_log.clear()
    # anchor curve with four points spanning the models' rates
    anchor = {
        "name": "anchor",
        "points": [{"bpppc": r, "psnr": 20 + 3 * np.log2(r), "sa": 10 - np.log2(r)} for r in (0.5, 1, 2, 4, 8)],
    }
    (tmp_path / "anchor.json").write_text(json.dumps(anchor))
    # two latent widths = two configurations of one point each: refused (a curve needs four points) ...
    with pytest.raises(ValueError, match="at least 4"):
        main(["select", "--models", *files, "--input", str(img), "--tile", "16", "--anchor",
              str(tmp_path / "anchor.json"), "--out", str(tmp_path / "sel.md")])  # fmt: skip
    # ... after reading every tile window by window
    assert window_log and max(max(h, w) for h, w in window_log) <= 16


def test_convert_hyspecnet_verb_on_official_layout(tmp_path, capsys):
    root = write_hyspecnet_fixture(tmp_path / "hsn", tiles=2, patches_per_tile=2, size=8, write_npy=False)
    tifs = sorted((root / "patches").glob("tile_*/*/*-SPECTRAL_IMAGE.TIF"))
    assert len(tifs) == 4 and not list((root / "patches").rglob("*-DATA.npy"))
    assert main(["convert-hyspecnet", str(root), "--workers", "1", "--threads"]) == 0
    assert "wrote 4 -DATA.npy files" in capsys.readouterr().out
    for split in ("train", "val", "test"):
        for npy in hyspecnet_files(root, "easy", split, source="npy"):
            assert npy.is_file(), npy
            tif = npy.with_name(npy.name.replace("-DATA.npy", "-SPECTRAL_IMAGE.TIF"))
            arr = np.load(npy)
            assert arr.shape == (202, 8, 8) and arr.dtype == np.float32
            assert np.array_equal(arr, hyspecnet_to_reflectance(read_hyspecnet_tif(tif)))
    assert not list(root.rglob("*.tmp*"))  # atomic writes left nothing behind
    empty = tmp_path / "empty"
    (empty / "patches").mkdir(parents=True)
    assert main(["convert-hyspecnet", str(empty)]) == 1
    assert "no patches/tile_*" in capsys.readouterr().err
