from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from nar_helpers import DATA
from rsim.nar.cli import main
from rsim.nar.noise import load_noisy_labels

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_experiment_verb_writes_csv_markdown_and_plot(tmp_path, capsys):
    code = main(
        [
            "experiment", "--out", str(tmp_path), "--methods", "nar_elr", "--noise", "0:0.4",
            "--epochs", "1", "--synthetic-samples", "80", "--batch-size", "32", "--img-size", "16",
            "--accelerator", "cpu",
        ]
    )  # fmt: skip
    assert code == 0
    results = pd.read_csv(tmp_path / "results.csv")
    assert list(results["method"]) == ["nar_elr"]
    assert set(results["noise"]) == {"subtractive"}
    assert results["test/map_macro"].between(0, 1).all()
    assert results.loc[results["method"] == "nar_elr", "nar_label_error"].notna().all()
    md = (tmp_path / "results.md").read_text()
    assert "| synthetic | subtractive | 0 | 0.4 |" in md
    assert (tmp_path / "results.png").stat().st_size > 0
    noisy = load_noisy_labels(next(tmp_path.glob("runs/*nar_elr/noisy_labels.npz")))
    assert noisy.sub_rate == 0.4 and noisy.removed.sum() > 0


def test_experiment_rejects_bad_rates(capsys):
    with pytest.raises(SystemExit):
        main(["experiment", "--noise", "0:1.5"])
    assert "must lie in [0, 1]" in capsys.readouterr().err


@pytest.mark.slow  # reads all 480,038 metadata rows; real-label counts are also checked in test_nar_noise
def test_inject_noise_on_real_metadata(tmp_path, capsys):
    meta = DATA / "benv2" / "metadata" / "metadata.parquet"
    if not meta.is_file():
        pytest.skip("shared sample data absent")
    out = tmp_path / "ben_sub40.npz"
    assert main(["inject-noise", str(meta), str(out), "--split", "validation", "--sub-rate", "0.4"]) == 0
    noisy = load_noisy_labels(out)
    assert noisy.clean.shape == (122342, 19)
    np.testing.assert_array_equal(noisy.removed.sum(0), np.floor(noisy.clean.sum(0).astype(np.int64) * 0.4))
    assert "subtractive noise" in capsys.readouterr().out
    assert main(["inject-noise", str(meta), str(out), "--add-rate", "2"]) == 1


def test_demo_config_fits_through_lightning_cli(tmp_path):
    code = main(
        [
            "fit", "--config", str(CONFIGS / "demo.yaml"), "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
            "--trainer.limit_val_batches=1", f"--trainer.default_root_dir={tmp_path}", "--trainer.accelerator=cpu",
            "--data.init_args.num_samples=200", "--trainer.enable_progress_bar=false",
        ]
    )  # fmt: skip
    assert code == 0
    assert list(tmp_path.rglob("noisy_labels.npz")) and list(tmp_path.rglob("nar_diagnostics.png"))
    assert list(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize("name", ["bigearthnet", "ucmerced", "aid", "deepglobe"])
def test_paper_recipes_parse(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--config", str(CONFIGS / f"{name}.yaml"), "--print_config"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "backbone: resnet18" in text and "max_epochs: 30" in text and "batch_size: 128" in text
