from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from rsim.radiomap.cli import main
from rsim.radiomap.data import RadioMapDataModule
from rsim.radiomap.generator import GeneratorConfig, generate_dataset
from rsim.radiomap.gpu_check import run
from rsim.radiomap.tasks import RadioMapTask, masked_mse


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("rmtask") / "data"
    generate_dataset(out, 3, GeneratorConfig(n_copies=1, severities=(0.5,), seed=1), processes=False, n_workers=1,
                     show_progress=False)  # fmt: skip
    return out


def test_masked_mse_ignores_invalid_pixels():
    pred = torch.tensor([[0.5, 0.9, 0.0]])
    target = torch.tensor([[0.4, 0.1, 1.0]])
    mask = torch.tensor([[True, False, False]])
    assert masked_mse(pred, target, mask).item() == pytest.approx(0.01)
    obs = torch.tensor([[False, False, True]])
    mix = masked_mse(pred, target, torch.ones_like(mask), obs, alpha=0.5)
    assert mix.item() == pytest.approx(0.5 * (0.01 + 0.64 + 1.0) / 3 + 0.5 * 1.0)


def test_training_reduces_loss_and_reports_db(root):
    torch.manual_seed(0)
    dm = RadioMapDataModule(str(root), batch_size=3, augment=False, eval_obs_fraction=0.02)
    task = RadioMapTask(in_channels=dm.num_channels, width_mult=0.125, lr=3e-3)
    full = dm.prepare_batch(next(iter(dm.train_dataloader())), training=False)
    # a 128² crop (→ 16² map) of two samples keeps the overfitting check cheap
    batch = {k: v[:2, :, : v.shape[-1] // 2, : v.shape[-1] // 2] for k, v in full.items() if v.ndim == 4}
    opt = task.configure_optimizers()["optimizer"]
    losses = []
    for _ in range(10):
        opt.zero_grad()
        _, loss = task._step(batch)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    trainer = Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=root.parent)  # fmt: skip
    out = trainer.test(task, dm, verbose=False)[0]
    assert out["test/rmse_db"] == pytest.approx((out["test/loss"] ** 0.5) * 59, rel=1e-4)


def test_short_overfit_learns_a_non_constant_map(root):
    """Regression test of the binary-encoding constant-map failure (vanishing signal under PyTorch's default init)."""
    torch.manual_seed(0)
    dm = RadioMapDataModule(str(root), encoding="binary", batch_size=2, augment=False, eval_obs_fraction=0.0,
                            fspl_channel=True)  # fmt: skip
    task = RadioMapTask(in_channels=dm.num_channels, width_mult=0.125, lr=1e-3)
    full = dm.prepare_batch(next(iter(dm.train_dataloader())), training=False)
    batch = {k: v[:, :, : v.shape[-1] // 2, : v.shape[-1] // 2] for k, v in full.items() if v.ndim == 4}  # 128²→16²
    valid = batch["mask"]
    target_std = batch["target"][valid].std().item()
    assert target_std > 0.02  # the maps themselves are not flat
    opt = task.configure_optimizers()["optimizer"]
    losses = []
    for _ in range(30):
        opt.zero_grad()
        _, loss = task._step(batch)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        pred = task(batch["input"])
    assert losses[-1] < 0.3 * losses[0]
    assert sum(losses[-10:]) < sum(losses[10:20])  # still decreasing, not a one-off dip
    assert pred[valid].std().item() > 0.3 * target_std  # follows the map, not its mean
    corr = torch.corrcoef(torch.stack([pred[valid], batch["target"][valid]]))[0, 1].item()
    assert corr > 0.5


def test_gpu_check_runs_on_cpu(tmp_path):
    loss = run(tmp_path, accelerator="cpu", precision="32-true", small=True)
    assert 0.0 < loss < 1.0


def test_cli_fit_and_baselines(root, tmp_path, capsys):
    code = main(["fit", "--model", "rsim.radiomap.tasks.RadioMapTask", "--model.width_mult", "0.125",
                 "--data", "rsim.radiomap.data.RadioMapDataModule", "--data.root", str(root), "--data.batch_size", "4",
                 "--trainer.max_steps", "1", "--trainer.limit_val_batches", "1", "--trainer.logger", "false",
                 "--trainer.enable_checkpointing", "false", "--trainer.enable_progress_bar", "false",
                 "--trainer.default_root_dir", str(tmp_path), "--trainer.accelerator", "cpu"])  # fmt: skip
    assert code == 0
    assert main(["baselines", str(root), "--obs-percent", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[-5:]
    assert [line.split()[0] for line in lines] == ["fspl", "fspl+offset", "fspl+gain+offset", "rbf", "thin_plate"]
    assert all(0 < float(line.split()[1]) < 59 for line in lines)
    assert Path(tmp_path).exists()
