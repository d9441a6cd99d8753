"""End to end: demo config through the CLI (1 step), map prediction, import-weights verb, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rsim.seabednet.cli import main
from rsim.seabednet.data.testing import write_magicbathynet, write_scene
from safetensors.torch import load_file

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
REF = Path(__file__).resolve().parents[3] / ".." / "shared" / "reference" / "seabednet" / "fixture_a"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("demo")
    write_magicbathynet(tmp / "data", num_patches=5, seed=0)
    code = main(
        [
            "fit",
            "--config",
            str(DEMO),
            f"--data.root={tmp / 'data'}",
            "--data.batch_size=1",
            f"--trainer.default_root_dir={tmp / 'run'}",
            "--trainer.max_steps=1",
            "--trainer.limit_val_batches=1",
            "--trainer.num_sanity_val_steps=0",
            "--trainer.logger=false",
        ]
    )
    assert code == 0
    ckpts = sorted((tmp / "run").rglob("*.ckpt"))
    assert ckpts, "fit wrote no checkpoint"
    return ckpts[-1]


def test_checkpoint_has_prediction_metadata(trained: Path) -> None:
    ckpt = torch.load(trained, map_location="cpu", weights_only=False)
    meta = ckpt["seabednet"]
    assert meta["depth_scale"] == pytest.approx(30.443)
    assert meta["native_tile"] == 30
    assert meta["upsample_mode"] == "nearest"
    np.testing.assert_allclose(meta["norm_param"], [[0, 0, 0], [220, 230, 240]])
    assert "weighting.log_vars" in ckpt["state_dict"]


def test_predict_map(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scene = write_scene(tmp_path / "scene.tif", size=50, seed=3)
    with rasterio.open(scene) as src:
        image, crs, transform = src.read(), src.crs, src.transform
    assert main(["predict", str(scene), "--ckpt", str(trained), "--out-dir", str(tmp_path / "out")]) == 0
    assert "tile 30" in capsys.readouterr().out
    with (
        rasterio.open(tmp_path / "out" / "scene_depth.tif") as d,
        rasterio.open(tmp_path / "out" / "scene_classes.tif") as c,
    ):
        assert d.crs == crs and d.transform == transform and c.crs == crs and c.transform == transform
        depth, classes = d.read(1), c.read(1)
        assert d.nodata == -9999.0 and c.nodata == 255
    nodata = (image != 0).mean(axis=0) < 0.5
    assert (depth[nodata] == -9999.0).all() and (classes[nodata] == 255).all()
    assert np.isfinite(depth).all() and (depth[~nodata] < 0).all()  # negative metres below the surface
    assert set(np.unique(classes[~nodata])) <= {0, 1, 2, 3}  # never "undefined"
    assert (tmp_path / "out" / "scene_preview.png").stat().st_size > 0


def test_predict_refusals(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small = write_scene(tmp_path / "small.tif", size=20)
    assert main(["predict", str(small), "--ckpt", str(trained), "--out-dir", str(tmp_path)]) == 1
    assert "at least 30x30" in capsys.readouterr().err
    four = tmp_path / "four.tif"
    with rasterio.open(small) as src:
        profile = dict(src.profile, count=4)
        data = np.concatenate([src.read(), src.read(1)[None]])
    with rasterio.open(four, "w", **profile) as dst:
        dst.write(data)
    with rasterio.open(four) as src:
        assert src.count == 4
    assert main(["predict", str(four), "--ckpt", str(trained), "--out-dir", str(tmp_path)]) == 1
    assert "expected 3 bands, got 4" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "nope.tif"), "--ckpt", str(trained), "--out-dir", str(tmp_path)]) == 1
    assert "nope.tif" in capsys.readouterr().err


@pytest.mark.skipif(not REF.is_dir(), reason="reference folder absent")
def test_import_weights_verb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sd = load_file(str(REF / "state_dict.safetensors"))
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "an_aerial.pth")
    assert main(["import-weights", str(tmp_path / "an_aerial.pth"), str(tmp_path / "w.safetensors")]) == 0
    assert "features=8" in capsys.readouterr().out
    out = load_file(str(tmp_path / "w.safetensors"))
    assert out.keys() == sd.keys() and all(torch.equal(out[k], sd[k]) for k in sd)
    (tmp_path / "bad.pth").write_bytes(b"xx")
    assert main(["import-weights", str(tmp_path / "bad.pth"), str(tmp_path / "x.safetensors")]) == 1
    assert "bad.pth" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["agia_napa_aerial", "puck_lagoon_s2"])
def test_paper_configs_parse(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = DEMO.parent / f"{name}.yaml"
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--config", str(cfg), "--print_config"])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    assert "features: 64" in out and f"site: {name.rsplit('_', 1)[0]}" in out
