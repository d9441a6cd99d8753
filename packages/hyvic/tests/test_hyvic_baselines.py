import numpy as np
import pytest
import torch
from rsim.hyvic.checkpoint import load_model, model_divisor, save_model
from rsim.hyvic.codec import compress_file, decode_to_array, open_source, quantised_forward
from rsim.hyvic.data.testing import write_geotiff_fixture
from rsim.hyvic.models.baselines import (
    HyCASSLike,
    build_baseline,
    hycass_compression_ratio,
    hycass_latent_channels,
)
from rsim.hyvic.models.hyvic import HyVICConfig
from rsim.hyvic.tasks import HyVICTask


@pytest.mark.parametrize("name", ["bmshj2018-hyperprior", "mbt2018-mean"])
def test_adapted_compressai_baseline_codes_c_bands(tmp_path, name):
    model = build_baseline(name, in_channels=7, n=16, m=24)
    assert model.g_a[0].in_channels == 7 and model.g_s[-2].out_channels == 7
    out = model(torch.rand(1, 7, 64, 64))
    assert out["x_hat"].shape == (1, 7, 64, 64)
    save_model(tmp_path / "b.pt", model)
    loaded = load_model(tmp_path / "b.pt")
    assert model_divisor(loaded) == 64
    tif = write_geotiff_fixture(tmp_path / "x.tif", bands=7, height=70, width=64)
    compress_file(loaded, tif, tmp_path / "x.hyv", tile=64)
    dec, header = decode_to_array(loaded, tmp_path / "x.hyv")
    assert header["architecture"] == name
    with open_source(tif) as src:
        ref, _ = quantised_forward(loaded, src, tile=64)
    assert np.array_equal(dec, ref)


def test_unknown_baseline():
    with pytest.raises(ValueError, match="unknown baseline"):
        build_baseline("cheng2020", 4)


def test_hycass_rate_convention():
    assert hycass_compression_ratio(202, 202, 1) == 4.0
    assert hycass_latent_channels(202, 4.0, 0) == 50
    assert hycass_compression_ratio(202, 50, 0) == pytest.approx(4.04)
    m = HyCASSLike(HyVICConfig(in_channels=8, num_stages=1, width=8, latent_channels=4, depths=[1], heads=[2]))
    assert m.compression_ratio == 8.0 and m.bpppc == 4.0
    out = m(torch.rand(2, 8, 16, 16))
    assert out["latent"].shape == (2, 4, 8, 8) and 0 <= float(out["latent"].min())
    assert out["x_hat"].shape == (2, 8, 16, 16)


def test_task_losses_and_optimisers():
    cfg = {"in_channels": 4, "num_stages": 1, "width": 8, "latent_channels": 8, "depths": [1], "heads": [2]}
    task = HyVICTask("hyvic", cfg, lmbda=100.0)
    x = torch.rand(2, 4, 16, 16)
    out = task.losses(x)
    assert torch.allclose(out["loss"], out["bpppc"] + 100.0 * out["mse"])
    main, aux = task.configure_optimizers()
    main_ids = {id(p) for g in main.param_groups for p in g["params"]}
    aux_ids = {id(p) for g in aux.param_groups for p in g["params"]}
    assert aux_ids == {id(task.model.entropy_bottleneck.quantiles)} and not (main_ids & aux_ids)
    hycass = HyVICTask("hycass", cfg)
    h = hycass.losses(x)
    assert torch.equal(h["loss"], h["mse"]) and float(h["bpppc"]) == 32 / 2.0
    with pytest.raises(ValueError, match="architecture"):
        HyVICTask("jpeg", cfg)


def test_pca_jpeg2000_rate_and_quality_grow_together():
    from rsim.core.metrics import psnr
    from rsim.hyvic.classical import pca_jpeg2000
    from rsim.hyvic.data.testing import _smooth_cube

    x = _smooth_cube(np.random.default_rng(0), 8, 32, 32)
    lo, hi = pca_jpeg2000(x, 2, quality=5), pca_jpeg2000(x, 4, quality=50)
    assert lo.x_hat.shape == x.shape and lo.bpppc < hi.bpppc
    p_lo = float(psnr(torch.from_numpy(lo.x_hat)[None], torch.from_numpy(x)[None]))
    p_hi = float(psnr(torch.from_numpy(hi.x_hat)[None], torch.from_numpy(x)[None]))
    assert p_hi > p_lo > 20
    with pytest.raises(ValueError, match="components"):
        pca_jpeg2000(x, 9)
