import csv
import math
import random

import pytest
import torch
from lightning.pytorch import Trainer
from rsim.core.data import BigEarthNetDataModule
from rsim.core.testing import write_benv2_fixture
from rsim.slimming import SlimmableTask, sandwich_widths, slim
from rsim.slimming.cli import main
from rsim.slimming.data import write_eurosat_fixture
from rsim.slimming.gpu_check import run
from rsim.slimming.tasks import forward_at_width

torch.set_num_threads(1)
TINY = {"embed_dim": 32, "depth": 2, "num_heads": 4, "patch_size": 8}


def test_sandwich_rule():
    widths = sandwich_widths(4, 0.25, random.Random(0))
    assert widths[:2] == [1.0, 0.25] and len(widths) == 4 and all(0.25 <= w <= 1 for w in widths)
    with pytest.raises(ValueError, match="n_sampled"):
        sandwich_widths(1, 0.25, random.Random(0))


def test_gpu_check_runs_one_moco_step_on_cpu(tmp_path):
    loss = run(tmp_path, accelerator="cpu", precision="32-true", small=True)
    assert math.isfinite(loss) and loss > 0


@pytest.mark.parametrize("objective", ["moco", "mae"])
def test_one_step_updates_encoder_and_distills(objective):
    torch.manual_seed(0)
    task = SlimmableTask(
        in_channels=4,
        img_size=32,
        backbone_kwargs=TINY,
        objective=objective,
        proj_dim=16,
        decoder_dim=32,
        decoder_depth=1,
        warmup_steps=1,
    )
    x = torch.randn(4, 4, 32, 32)
    before = task.encoder.blocks[0].mlp.fc1.weight.detach().clone()
    step = task._moco_step if objective == "moco" else task._mae_step
    with_kd = step(x, [1.0, 0.25])
    assert len(with_kd) == 2 and all(torch.isfinite(v) for v in with_kd)
    task.hparams["inplace_distill"] = False
    torch.manual_seed(1)
    loss = torch.stack(step(x, [1.0, 0.25])).sum()
    loss.backward()
    grad = task.encoder.blocks[0].mlp.fc1.weight.grad
    assert grad is not None and grad[:32].abs().sum() > 0  # the units used at s = 0.25 receive gradients
    opt = torch.optim.SGD(task.encoder.parameters(), lr=0.1)
    opt.step()
    assert not torch.equal(before, task.encoder.blocks[0].mlp.fc1.weight)


def test_train_checkpoint_is_swept(tmp_path):
    fx = write_benv2_fixture(tmp_path / "benv2", splits={"train": 4, "validation": 1, "test": 1})
    data = BigEarthNetDataModule(
        root=str(fx.root),
        metadata=str(fx.metadata_path),
        bands="S2",
        img_size=32,
        batch_size=4,
        num_workers=0,
        persistent_workers=False,
        limit_to_available=True,
    )
    task = SlimmableTask(
        in_channels=10,
        img_size=32,
        backbone_kwargs=TINY,
        objective="mae",
        decoder_dim=32,
        decoder_depth=1,
        warmup_steps=1,
    )
    trainer = Trainer(
        accelerator="cpu",
        max_steps=2,
        limit_val_batches=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(task, data)
    ckpt = tmp_path / "slim.ckpt"
    trainer.save_checkpoint(ckpt)
    x = torch.randn(2, 10, 32, 32)
    loaded = SlimmableTask.load_from_checkpoint(ckpt, map_location="cpu").eval()
    with torch.no_grad():
        torch.testing.assert_close(
            slim(loaded.encoder, 0.25).eval()(x), forward_at_width(task.encoder.eval(), x, 0.25), atol=1e-5, rtol=1e-5
        )
    euro = write_eurosat_fixture(tmp_path / "eurosat", num_classes=2, per_class=4, size=16)
    out = tmp_path / "sweep"
    assert (
        main(
            [
                "sweep",
                "--checkpoint",
                str(ckpt),
                "--img-size",
                "32",
                "--eurosat",
                str(euro),
                "--eurosat-bands",
                "1,2,3,7,4,5,6,12,10,11",
                "--widths",
                "1,0.25",
                "--probes",
                "knn",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert [r["model"] for r in rows] == ["slim", "slim"]
