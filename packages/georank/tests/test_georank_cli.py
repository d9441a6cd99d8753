from pathlib import Path

import pandas as pd
import pytest
from rsim.georank.cli import main

REPO = Path(__file__).resolve().parents[3]
BENV2 = REPO / "shared" / "data" / "benv2"
DEMO = REPO / "packages" / "georank" / "configs" / "demo.yaml"


@pytest.mark.skipif(not BENV2.is_dir(), reason="shared sample data absent")
def test_coords_verb_on_real_benv2(tmp_path, capsys):
    out = tmp_path / "coords.parquet"
    assert main(["coords", str(BENV2), str(out), "--workers", "1", "--threads"]) == 0
    frame = pd.read_parquet(out)
    assert list(frame["patch_id"]) == ["S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43"]
    assert frame["lat"].iloc[0] == pytest.approx(48.27, abs=0.05)
    assert "1 patches" in capsys.readouterr().out


def test_fit_export_knn_roundtrip(tmp_path, capsys):
    ssl = tmp_path / "ssl4eo"
    assert main(["fixture", "ssl4eo", str(ssl), "--locations", "4", "--size", "36"]) == 0
    run = tmp_path / "run"
    assert (
        main(
            [
                "fit",
                "--config",
                str(DEMO),
                f"--data.init_args.root={ssl}",
                "--data.init_args.batch_size=4",
                "--model.init_args.backbone=resnet10t",
                "--model.init_args.proj_hidden_dim=32",
                "--model.init_args.proj_dim=16",
                "--model.init_args.pred_hidden_dim=32",
                "--trainer.max_steps=1",
                "--trainer.max_epochs=1",
                f"--trainer.default_root_dir={run}",
                "--trainer.enable_progress_bar=false",
                "--trainer.accelerator=cpu",
            ]
        )
        == 0
    )
    ckpt = next(run.rglob("*.ckpt"))
    weights = tmp_path / "bb.safetensors"
    assert main(["export", str(ckpt), str(weights)]) == 0
    ben = tmp_path / "ben"
    assert main(["fixture", "benv2", str(ben), "--locations", "4"]) == 0
    capsys.readouterr()
    assert main(["knn", str(weights), str(ben), "--backbone", "resnet10t", "--img-size", "32", "--k", "3"]) == 0
    lines = dict(line.split(": ") for line in capsys.readouterr().out.strip().splitlines())
    assert set(lines) == {"knn/map_micro", "knn/map_macro", "knn/f1_micro", "knn/f1_macro"}
    assert 0.0 < float(lines["knn/map_micro"]) <= 1.0


def test_export_rejects_foreign_checkpoint(tmp_path):
    import torch

    bad = tmp_path / "x.ckpt"
    torch.save({"state_dict": {"head.weight": torch.zeros(1)}}, bad)
    with pytest.raises(SystemExit, match="backbone"):
        main(["export", str(bad), str(tmp_path / "o.safetensors")])


def test_ssl4eo_coords_verb_feeds_gassl_clusters(tmp_path, capsys):
    import numpy as np
    from rsim.georank.data import SSL4EODataModule
    from rsim.georank.data.testing import write_ssl4eo_fixture

    centres = write_ssl4eo_fixture(tmp_path / "s", num_locations=5, num_timestamps=1, size=12)
    out = tmp_path / "ssl4eo_coords.parquet"
    argv = ["coords", str(tmp_path / "s"), str(out), "--layout", "ssl4eo", "--workers", "1", "--threads",
            "--chunk-size", "2"]  # fmt: skip
    assert main(argv) == 0
    assert "5 patches" in capsys.readouterr().out
    frame = pd.read_parquet(out)
    assert list(frame["patch_id"]) == [f"{i:07d}" for i in range(5)]
    np.testing.assert_allclose(frame[["lat", "lon"]].to_numpy(), np.asarray(centres), atol=1e-7)
    dm = SSL4EODataModule(str(tmp_path / "s"), img_size=12, subset_fraction=0.6, num_workers=0)
    from_files = dm.train_coordinates()
    dm_file = SSL4EODataModule(str(tmp_path / "s"), img_size=12, subset_fraction=0.6, num_workers=0,
                               coords_file=str(out))  # fmt: skip
    assert from_files.shape == (3, 2)
    np.testing.assert_allclose(dm_file.train_coordinates(), from_files, atol=1e-12)
