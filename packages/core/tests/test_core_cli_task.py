from __future__ import annotations

import math
from pathlib import Path

import pytest
import timm
import torch
import yaml
from core_paths import REPO
from rsim.core.cli import build_cli, main
from rsim.core.tasks import MultiLabelClassificationTask, warmup_cosine_schedule
from safetensors.torch import save_file


def _tiny_config(tmp_path: Path, root: Path, backbone: str = "resnet18") -> Path:
    config = yaml.safe_load((REPO / "shared" / "configs" / "bigearthnet_demo.yaml").read_text())
    config["trainer"].update(max_epochs=1, default_root_dir=str(tmp_path / "runs"), enable_model_summary=False)
    config["model"]["init_args"].update(backbone=backbone, backbone_kwargs={"layers": [1, 1, 1, 1]}
                                        if backbone == "resnet18" else {})  # fmt: skip
    config["data"]["init_args"].update(root=str(root), version=2, metadata=None, batch_size=2)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_train_alias_fits_validates_tests_and_saves_config(benv2_fixture, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = _tiny_config(tmp_path, benv2_fixture.root)
    assert main(["train", "--config", str(config), "--trainer.limit_train_batches", "2"]) == 0
    out = capsys.readouterr().out
    assert "val/map_macro" in out and "val/f1_micro" in out  # the metrics table
    saved = list((tmp_path / "runs").rglob("config.yaml"))
    assert saved and yaml.safe_load(saved[0].read_text())["seed_everything"] == 0
    ckpts = list((tmp_path / "runs").rglob("*.ckpt"))
    assert ckpts
    ckpt = torch.load(ckpts[0], map_location="cpu", weights_only=False)
    assert ckpt["BigEarthNetDataModule"]["band_order"][:3] == ["B02", "B03", "B04"]
    assert len(ckpt["BigEarthNetDataModule"]["label_names"]) == 19
    assert main(["test", "--config", str(config), "--ckpt_path", str(ckpts[0])]) == 0
    assert "test/map_micro" in capsys.readouterr().out


def test_cli_help_verbs_and_unknown_command(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--help"]) == 0
    assert "train      alias of fit" in capsys.readouterr().out
    seen: list[list[str]] = []
    assert build_cli(prog="x", verbs={"hello": lambda a: seen.append(a) or 3}, args=["hello", "--n", "1"]) == 3
    assert seen == [["--n", "1"]]
    assert build_cli(prog="x", args=["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err

    def long_verb(args: list[str]) -> int:
        """Does one thing."""
        return 0

    assert build_cli(prog="x", verbs={"generate-building-change": long_verb}, args=["--help"]) == 0
    out = capsys.readouterr().out  # columns widen to the longest verb, so the descriptions stay aligned
    assert "  generate-building-change  Does one thing." in out and "  train                     alias of fit" in out
    assert build_cli(prog="x", args=["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fit", "--help"])


def test_channel_mismatch_is_explained(benv2_fixture, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = _tiny_config(tmp_path, benv2_fixture.root)
    with pytest.raises(ValueError, match=r"in_channels=10 but the data module yields 12 channels"):
        main(["fit", "--config", str(config), "--data.init_args.bands", "S1S2"])


def test_warmup_cosine_schedule() -> None:
    f = warmup_cosine_schedule(4, 14)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == 1.0 and math.isclose(f(9), 0.5) and math.isclose(f(14), 0.0, abs_tol=1e-12)


def test_weights_load_from_safetensors_in_timm_layout(tmp_path: Path) -> None:
    source = timm.create_model("resnet18", pretrained=False, in_chans=10, num_classes=1000)
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    task = MultiLabelClassificationTask("resnet18", in_channels=10, weights=str(path), freeze_backbone=True)
    torch.testing.assert_close(task.model.conv1.weight, source.conv1.weight)
    assert task.model.fc.weight.shape == (19, 512)  # the 1000-class head is skipped
    trainable = {n for n, p in task.model.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"}
    feats = task.features(torch.randn(2, 10, 64, 64))
    assert feats.shape == (2, 512)
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        MultiLabelClassificationTask("resnet18", weights=str(tmp_path / "missing.safetensors"))


def test_training_reduces_the_loss_on_a_fixed_batch() -> None:
    task = MultiLabelClassificationTask("resnet18", in_channels=3, drop_rate=0.0, drop_path_rate=0.0,
                                        backbone_kwargs={"layers": [1, 1, 1, 1]})  # fmt: skip
    batch = {"image": torch.randn(4, 3, 32, 32), "label": (torch.rand(4, 19) > 0.7).float()}
    optimizer = torch.optim.AdamW(task.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        loss = task.loss(task(batch["image"]), batch["label"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]


def test_progress_bar_can_be_disabled(benv2_fixture, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = _tiny_config(tmp_path, benv2_fixture.root)
    args = ["fit", "--config", str(config), "--trainer.enable_progress_bar", "false", "--trainer.max_steps", "1"]
    assert main(args) == 0


def test_config_callbacks_keep_the_metrics_table(benv2_fixture, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = _tiny_config(tmp_path, benv2_fixture.root)
    data = yaml.safe_load(config.read_text())
    data["trainer"]["callbacks"] = [
        {"class_path": "lightning.pytorch.callbacks.EarlyStopping", "init_args": {"monitor": "train/loss"}}
    ]
    config.write_text(yaml.safe_dump(data))
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "1", "--trainer.limit_val_batches", "1"]) == 0
    assert "metrics after" in capsys.readouterr().out  # MetricsSummary added beside the config's own callbacks


def test_atomic_file_gets_normal_permissions(tmp_path: Path) -> None:
    import os

    from rsim.core.io import atomic_path

    with atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("x")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_fit_one_step_runs_device_transforms_and_reports_the_loss(benv2_fixture, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from rsim.core.data import BigEarthNetDataModule
    from rsim.core.testing import fit_one_step

    def parts() -> tuple[MultiLabelClassificationTask, BigEarthNetDataModule]:
        task = MultiLabelClassificationTask("resnet18", in_channels=3, backbone_kwargs={"layers": [1, 1, 1, 1]})
        return task, BigEarthNetDataModule(root=str(benv2_fixture.root), bands="RGB", batch_size=2, num_workers=0)

    task, data = parts()
    loss = fit_one_step(task, data, tmp_path, accelerator="cpu", precision="32-true")
    assert math.isfinite(loss) and loss > 0
    task, data = parts()
    with pytest.raises(KeyError, match="logged no 'train_loss'"):
        fit_one_step(task, data, tmp_path, accelerator="cpu", precision="32-true", loss_key="train_loss")
