import json
from pathlib import Path

import pytest
import torch
from rsim.csmoe.cli import main

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"

torch.set_num_threads(1)


def test_demo_config_fit_then_retrieval(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["make-demo-data", "demo_data/benv2", "--train", "4", "--validation", "2", "--test", "2"]) == 0
    assert (
        main(
            [
                "fit",
                "--config",
                str(DEMO),
                "--trainer.max_epochs=1",
                "--trainer.limit_train_batches=1",
                "--trainer.limit_val_batches=1",
                "--model.init_args.embed_dim=24",
                "--model.init_args.specific_depth=1",
                "--model.init_args.shared_depth=1",
                "--model.init_args.decoder_depth=1",
                "--model.init_args.decoder_embed_dim=16",
                "--data.init_args.batch_size=4",
            ]
        )
        == 0
    )
    ckpt = tmp_path / "demo_runs" / "csmoe" / "checkpoints" / "csmoe-demo.ckpt"
    assert ckpt.is_file()
    capsys.readouterr()
    assert (
        main(
            [
                "retrieval",
                "--checkpoint",
                str(ckpt),
                "--config",
                str(DEMO),
                "--k",
                "2",
                "--out",
                "scores.json",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "queries: 2 (validation), archive: 2 (test), k=2" in out
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert len(scores) == 12 and all(0.0 <= v <= 1.0 for v in scores.values())
    with pytest.raises(KeyError, match="no 'data' section"):
        (tmp_path / "bad.yaml").write_text("model: {}\n")
        main(["retrieval", "--checkpoint", str(ckpt), "--config", "bad.yaml"])


@pytest.mark.parametrize(
    "name",
    [
        "demo.yaml",
        "demo_benv1_examples.yaml",
        "probe_demo.yaml",
        "segmentation_demo.yaml",
        "csmae_sesd_vitb_reben.yaml",
        "csmoe_vitb_reben.yaml",
    ],
)
def test_configs_parse_against_signatures(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--config", str(DEMO.parent / name), "--print_config"])
    assert exc.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "rsim.csmoe.tasks.CSMoE" in printed and "BigEarthNetDataModule" in printed
