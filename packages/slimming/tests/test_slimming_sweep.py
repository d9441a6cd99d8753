import csv
import math
from pathlib import Path

import pytest
import torch
from rsim.slimming.cli import main
from rsim.slimming.data import EuroSATFolder, split_indices, write_eurosat_fixture
from rsim.slimming.models import load_encoder
from rsim.slimming.probes import evaluate, knn_scores, linear_probe_scores
from rsim.slimming.sweep import accuracy_at_budget
from safetensors.torch import save_file

torch.set_num_threads(1)
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
TINY = '{"embed_dim": 32, "depth": 2, "num_heads": 4, "patch_size": 8}'


def test_eurosat_folder_and_bad_input(tmp_path):
    root = write_eurosat_fixture(tmp_path / "eurosat", num_classes=3, per_class=5, size=16)
    ds = EuroSATFolder(root)
    assert ds.classes == ["AnnualCrop", "Forest", "HerbaceousVegetation"] and len(ds) == 15
    item = ds[7]
    assert item["image"].shape == (13, 16, 16) and int(item["label"]) == 1
    train, test = split_indices(ds.labels, 0.2, seed=0)
    assert len(test) == 3 and set(train).isdisjoint(test) and len(train) + len(test) == 15
    with pytest.raises(ValueError, match=r"AnnualCrop_1\.tif: 13 bands, expected 12"):
        EuroSATFolder(root, num_bands=12)[0]
    (root / "Forest" / "Forest_2.tif").write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match=r"Forest_2\.tif: unreadable"):
        ds[6]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        EuroSATFolder(tmp_path / "nowhere")


def test_probes_separate_easy_classes():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(60) % 3
    x = torch.nn.functional.one_hot(y, 3).float() * 4 + torch.randn(60, 3, generator=g)
    logits = linear_probe_scores(x[:45], y[:45], x[45:], 3, multilabel=False, epochs=50, lr=1e-2)
    assert evaluate(logits, y[45:], False, True) > 0.9
    assert evaluate(knn_scores(x[:45], y[:45], x[45:], 3, False, k=5), y[45:], False, False) > 0.9
    ml = torch.nn.functional.one_hot(y, 3).float()
    scores = knn_scores(x[:45], ml[:45], x[45:], 3, True, k=5)
    assert evaluate(scores, ml[45:], True, False) > 0.9
    assert evaluate(torch.rand(15, 3, generator=g), ml[45:], True, False) < 0.9


def test_accuracy_at_budget():
    assert accuracy_at_budget([1.0, 0.1, 0.001], [1.0, 0.8, 0.4]) == pytest.approx(0.6)
    assert accuracy_at_budget([1.0, 0.01], [1.0, 0.7]) == pytest.approx(0.7)
    assert math.isnan(accuracy_at_budget([1.0, 0.5, 0.02], [1.0, 0.9, 0.8]))


def test_sweep_cli_writes_csv_and_plot(tmp_path):
    euro = write_eurosat_fixture(tmp_path / "eurosat", num_classes=3, per_class=6, size=16)
    torch.manual_seed(0)
    enc = load_encoder(
        "vit_small_patch16_224", in_chans=13, img_size=32, embed_dim=32, depth=2, num_heads=4, patch_size=8
    )
    save_file(enc.state_dict(), tmp_path / "w.safetensors")
    out = tmp_path / "sweep"
    code = main(
        [
            "sweep",
            "--model",
            "vit_small_patch16_224",
            "--weights",
            str(tmp_path / "w.safetensors"),
            "--model-kwargs",
            '{"in_chans": 13, "img_size": 32, "embed_dim": 32, "depth": 2, "num_heads": 4, "patch_size": 8}',
            "--img-size",
            "32",
            "--eurosat",
            str(euro),
            "--widths",
            "1,0.5,1/64",
            "--probe-epochs",
            "5",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert len(rows) == 3 * 2  # widths x probes
    full = [r for r in rows if float(r["width"]) == 1.0]
    for r in full:  # relative = value / value(s=1); undefined when the full-width value is 0
        assert float(r["relative"]) == pytest.approx(1.0) if float(r["value"]) > 0 else math.isnan(float(r["relative"]))
    for r in rows:
        ref = next(float(f["value"]) for f in full if f["probe"] == r["probe"])
        if ref > 0:
            assert float(r["relative"]) == pytest.approx(float(r["value"]) / ref)
    rel = sorted(float(r["rel_flops_blocks"]) for r in rows if r["probe"] == "knn")
    assert rel[0] < 0.1 and rel[-1] == 1.0
    summary = list(csv.DictReader(open(out / "summary.csv")))
    assert {r["probe"] for r in summary} == {"linear", "knn"}
    assert "relative_at_0.01_flops_blocks" in summary[0]
    assert float(summary[0]["min_width"]) == pytest.approx(1 / 64)
    assert (out / "sweep.png").stat().st_size > 1000
    assert (out / "analysis.json").is_file()


@pytest.mark.skipif(not (SHARED / "benv1-examples").is_dir(), reason="shared sample data absent")
def test_sweep_on_real_bigearthnet_examples(tmp_path):
    out = tmp_path / "ben"
    code = main(
        [
            "sweep",
            "--model",
            "vit_small_patch16_224",
            "--model-kwargs",
            '{"in_chans": 10, "img_size": 32, "embed_dim": 32, "depth": 2, "num_heads": 4, "patch_size": 8}',
            "--img-size",
            "32",
            "--ben-root",
            str(SHARED / "benv1-examples"),
            "--ben-version",
            "1",
            "--ben-metadata",
            str(SHARED / "benv2" / "metadata" / "metadata.parquet"),
            "--widths",
            "1,0.25",
            "--probes",
            "knn",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert [r["metric"] for r in rows] == ["map_macro", "map_macro"]
    assert all(0.0 <= float(r["value"]) <= 1.0 for r in rows)


def test_sweep_channel_mismatch_is_reported(tmp_path):
    euro = write_eurosat_fixture(tmp_path / "eurosat", num_classes=2, per_class=3, size=16)
    with pytest.raises(ValueError, match="13 channels but model"):
        main(
            [
                "sweep",
                "--model",
                "vit_small_patch16_224",
                "--model-kwargs",
                TINY.replace("}", ', "in_chans": 3, "img_size": 32}'),
                "--img-size",
                "32",
                "--eurosat",
                str(euro),
                "--widths",
                "1",
                "--out",
                str(tmp_path / "o"),
            ]
        )
