import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch import Trainer
from PIL import Image
from rasterio.transform import from_origin
from rsim.core.data.geotiff import read_geotiff, write_geotiff
from rsim.core.errors import DataFormatError
from rsim.sea_undistort.cli import main
from rsim.sea_undistort.data import SeaUndistortDataModule
from rsim.sea_undistort.data.testing import write_sea_undistort_fixture
from rsim.sea_undistort.evaluate import evaluate_checkpoints
from rsim.sea_undistort.metrics import RestorationMetrics, rgb_to_y
from rsim.sea_undistort.tasks import ResShiftTask, SupervisedRestorationTask, load_task

torch.set_num_threads(1)
TINY = dict(model_channels=8, channel_mult=[1, 2], num_res_blocks=1, attention_levels=[2], swin_embed_dim=8,
            window_size=4, head_dim=4, lq_widths=[8, 8, 8], ema_decay=None, lr=1e-3, warmup_steps=1)  # fmt: skip


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sea_undistort_fixture(tmp_path_factory.mktemp("su"), num_scenes=12, size=40).root


def _trainer(tmp: Path, steps: int) -> Trainer:
    return Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_progress_bar=False,
                   enable_model_summary=False, default_root_dir=tmp, limit_val_batches=1, num_sanity_val_steps=0,
                   enable_checkpointing=False)  # fmt: skip


def test_metrics_psnr_y_and_ssim():
    x = torch.rand(2, 3, 16, 16)
    m = RestorationMetrics(lpips=False)
    m.update(x, x.clamp(0, 1) * 0 + x)
    out = m.compute()
    assert out["psnr_y"] == float("inf") and out["ssim"] == pytest.approx(1.0)
    y = rgb_to_y(torch.ones(1, 3, 1, 1))
    assert y.item() == pytest.approx((65.481 + 128.553 + 24.966 + 16) / 255)
    m.reset()
    noisy = (x + 0.1).clamp(0, 1)
    m.update(noisy, x)
    mse = ((rgb_to_y(noisy) - rgb_to_y(x)) ** 2).flatten(1).mean(1)
    assert m.compute()["psnr_y"] == pytest.approx(float((-10 * torch.log10(mse)).mean()), rel=1e-4)
    assert RestorationMetrics().lpips_skipped_reason is not None or RestorationMetrics().lpips is not None


def test_resshift_ef_fit_checkpoint_and_evaluate(data_root, tmp_path):
    torch.manual_seed(0)
    dm = SeaUndistortDataModule(str(data_root), size=32, batch_size=4, color_jitter="light")
    task = ResShiftTask(early_fusion=True, **TINY)
    trainer = _trainer(tmp_path, 3)
    trainer.fit(task, dm)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert "val/psnr_y" in trainer.callback_metrics and "val/ssim" in trainer.callback_metrics
    ckpt = tmp_path / "ef.ckpt"
    trainer.save_checkpoint(ckpt)
    loaded = load_task(ckpt)
    assert isinstance(loaded, ResShiftTask) and loaded.model.early_fusion
    lq, mask = torch.rand(1, 3, 32, 32), torch.rand(1, 1, 32, 32)
    assert torch.equal(loaded.restore(lq, mask), task.eval().restore(lq, mask))  # seeded sampler
    base = SupervisedRestorationTask(use_mask=True, width=8, enc_blocks=[1, 1], middle_blocks=1, dec_blocks=[1, 1])
    trainer2 = _trainer(tmp_path, 2)
    trainer2.fit(base, dm)
    trainer2.save_checkpoint(tmp_path / "naf.ckpt")
    out = tmp_path / "eval.md"
    rows = evaluate_checkpoints(data_root, {"resshift_ef": ckpt, "nafnet": tmp_path / "naf.ckpt"}, out,
                                data_options={"size": 32})  # fmt: skip
    assert [r["model"] for r in rows] == ["input (no restoration)", "resshift_ef", "nafnet"]
    assert rows[0]["images"] == len(dm.dataset("test")) and "| resshift_ef |" in out.read_text()
    assert json.loads(out.with_suffix(".json").read_text())["rows"][1]["model"] == "resshift_ef"
    # restore verb: GeoTIFF in, GeoTIFF out with the same georeferencing, before|after preview
    arr = np.random.default_rng(0).integers(0, 255, (3, 40, 50), dtype=np.uint8)
    profile = {"crs": "EPSG:32636", "transform": from_origin(500000, 3870000, 0.05, 0.05), "dtype": "uint8",
               "count": 3, "height": 40, "width": 50}  # fmt: skip
    write_geotiff(tmp_path / "scene.tif", arr, profile)
    code = main(["restore", str(tmp_path / "scene.tif"), str(tmp_path / "restored.tif"), "--ckpt", str(ckpt),
                 "--tile", "32", "--overlap", "4", "--preview", str(tmp_path / "ba.png")])  # fmt: skip
    assert code == 0
    restored, prof = read_geotiff(tmp_path / "restored.tif")
    assert restored.shape == (3, 40, 50) and prof["transform"] == profile["transform"]
    assert np.asarray(Image.open(tmp_path / "ba.png")).shape == (40, 104, 3)
    torch.save({"state_dict": {}}, tmp_path / "bad.ckpt")
    with pytest.raises(DataFormatError, match="bad.ckpt"):
        load_task(tmp_path / "bad.ckpt")


def test_cli_train_with_config(data_root, tmp_path):
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "max_steps": 2,
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "limit_val_batches": 1,
            "num_sanity_val_steps": 0,
            "default_root_dir": str(tmp_path),
        },
        "model": {"class_path": "rsim.sea_undistort.tasks.ResShiftTask", "init_args": {"early_fusion": False, **TINY}},
        "data": {
            "class_path": "rsim.sea_undistort.data.SeaUndistortDataModule",
            "init_args": {"root": str(data_root), "size": 32, "batch_size": 4, "add_mask": False},
        },
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", "--config", str(path)]) == 0
    assert list(tmp_path.rglob("*.ckpt"))


def test_gpu_check_cpu_smoke(tmp_path):
    from rsim.sea_undistort.gpu_check import run

    loss = run(tmp_path, accelerator="cpu", precision="32-true", small=True)
    assert loss == loss and loss > 0
