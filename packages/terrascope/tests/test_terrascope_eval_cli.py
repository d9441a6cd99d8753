"""Evaluator (letter accuracy, mask IoU, correlation) and the command-line verbs on shipped and generated data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rsim.core.errors import DataFormatError, MissingKeyError
from rsim.terrascope.cli import main
from rsim.terrascope.data.bench import BenchItem, load_bench
from rsim.terrascope.evaluate import Prediction, evaluate, extract_letter, load_predictions, write_predictions

BENV2 = Path(__file__).resolve().parents[3] / "shared" / "data" / "benv2"


def test_extract_letter() -> None:
    assert extract_letter("<think>A region [SEG]</think><answer>The answer is C.</answer>") == "C"
    assert extract_letter("<think>A region</think><answer>C</answer>", parse_from="full") == "A"
    assert extract_letter("Answer: B) 12 ha") == "B"
    assert extract_letter("ABC or none") is None
    assert extract_letter("<answer>e</answer>") is None


def _items() -> list[BenchItem]:
    gt = np.zeros((4, 4), bool)
    gt[:2] = True
    return [
        BenchItem("q0", ["1", "2", "3", "4"], "A", "coverage_percentage", gt_masks=[gt], index=0),
        BenchItem("q1", ["1", "2", "3", "4"], "B", "coverage_percentage", gt_masks=[gt], index=1),
        BenchItem("q2", ["x", "y"], "B", "boundary_detection", gt_masks=[gt, ~gt], index=2),
        BenchItem("q3", ["x", "y"], "A", "boundary_detection", gt_masks=[gt, gt], index=3),
    ]


def test_evaluate_accuracy_iou_and_correlation() -> None:
    gt = np.zeros((4, 4), bool)
    gt[:2] = True
    half = np.zeros((4, 4), bool)
    half[0] = True
    preds = [
        Prediction(0, "<answer>A</answer>", [gt]),  # correct, IoU 1
        Prediction(1, "<answer>C</answer>", [half]),  # wrong, IoU 0.5
        Prediction(2, "<answer>B</answer>", [gt, ~gt]),  # correct, IoU 1
        # item 3 has no prediction: wrong, masks empty → IoU 0
    ]
    r = evaluate(_items(), preds)
    assert r.accuracy == {"coverage_percentage": 0.5, "boundary_detection": 0.5}
    assert r.macro_accuracy == 0.5 and r.overall_accuracy == 0.5
    assert r.item_iou == [1.0, 0.5, 1.0, 0.0]
    assert r.mask["miou"] == pytest.approx(0.625)
    # gIoU over the 6 mask pairs: (1 + 0.5 + 1 + 1 + 0 + 0) / 6; cIoU: (8 + 4 + 8 + 8) / (8 + 8 + 8 + 8 + 8 + 8)
    assert r.mask["giou"] == pytest.approx(3.5 / 6, abs=1e-6)
    assert r.mask["ciou"] == pytest.approx(28 / 48, abs=1e-6)
    assert (r.iou_correct, r.iou_wrong) == (1.0, 0.25)
    assert r.pearson_r == pytest.approx(np.corrcoef([1, 0.5, 1, 0], [1, 0, 1, 0])[0, 1])
    assert "macro average" in r.table()
    with pytest.raises(DataFormatError, match="unknown item"):
        evaluate(_items(), [Prediction(9, "A")])
    with pytest.raises(DataFormatError, match="predicted mask 0"):
        evaluate(_items(), [Prediction(0, "A", [np.zeros((2, 2), bool)])])


def test_predictions_io(tmp_path: Path) -> None:
    m = np.eye(3, dtype=bool)
    path = write_predictions([Prediction(0, "<answer>A</answer>", [m])], tmp_path / "p.jsonl")
    (back,) = load_predictions(path)
    assert back.text == "<answer>A</answer>" and np.array_equal(back.masks[0], m)
    (tmp_path / "bad.jsonl").write_text(json.dumps({"prediction": "A"}) + "\n")
    with pytest.raises(MissingKeyError, match="line 1: field 'index'"):
        load_predictions(tmp_path / "bad.jsonl")
    (tmp_path / "junk.jsonl").write_text("{oops\n")
    with pytest.raises(DataFormatError, match="line 1: not JSON"):
        load_predictions(tmp_path / "junk.jsonl")


def test_cli_generate_and_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = tmp_path / "bench.parquet"
    assert (
        main(
            [
                "generate-bench",
                str(BENV2),
                str(bench),
                "--image-source",
                "auto",
                "--threads",
                "--workers",
                "1",
                "--split",
                "test",
            ]
        )
        == 0
    )
    assert "23 items from 1 patch(es)" in capsys.readouterr().out
    items = load_bench(bench)
    # an "oracle" answering every item right with the ground-truth masks, and one always answering "A" without masks
    oracle = [Prediction(i.index, f"<answer>{i.answer}</answer>", list(i.gt_masks)) for i in items]
    write_predictions(oracle, tmp_path / "oracle.jsonl")
    assert (
        main(
            [
                "evaluate",
                "--bench",
                str(bench),
                "--predictions",
                str(tmp_path / "oracle.jsonl"),
                "--out",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )
    result = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert result["macro_accuracy"] == 1.0 and result["mask"]["miou"] == 1.0
    assert (tmp_path / "eval" / "results.png").stat().st_size > 0
    write_predictions([Prediction(i.index, "A") for i in items], tmp_path / "a.jsonl")
    main(
        [
            "evaluate",
            "--bench",
            str(bench),
            "--predictions",
            str(tmp_path / "a.jsonl"),
            "--out",
            str(tmp_path / "e2"),
            "--no-plot",
        ]
    )
    result = json.loads((tmp_path / "e2" / "results.json").read_text())
    expect = np.mean([np.mean([i.answer == "A" for i in items if i.task_type == t]) for t in result["accuracy"]])
    assert result["macro_accuracy"] == pytest.approx(expect) and result["mask"]["miou"] == 0.0
    assert (
        main(
            [
                "generate-refseg",
                str(BENV2),
                str(tmp_path / "rs"),
                "--image-source",
                "reference_colors",
                "--threads",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    assert "4 records" in capsys.readouterr().out
    from rsim.terrascope.data.testing import write_xbd_fixture

    write_xbd_fixture(tmp_path / "xbd", n_pairs=1, destroyed=(5,))
    assert (
        main(
            [
                "generate-building-change",
                str(tmp_path / "xbd"),
                str(tmp_path / "bc.parquet"),
                "--threads",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    assert "1 items from 1 pair(s)" in capsys.readouterr().out


def test_configs_match_signatures() -> None:
    import inspect

    import yaml
    from rsim.terrascope.data.datamodule import TerraCotDataModule
    from rsim.terrascope.tasks import TerraScopeTask

    configs = Path(__file__).resolve().parents[1] / "configs"
    for name in ("demo.yaml", "paper_stage1.yaml", "paper_stage2.yaml"):
        cfg = yaml.safe_load((configs / name).read_text())
        for section, cls in (("model", TerraScopeTask), ("data", TerraCotDataModule)):
            assert cfg[section]["class_path"] == f"{cls.__module__}.{cls.__name__}"
            unknown = set(cfg[section]["init_args"]) - set(inspect.signature(cls.__init__).parameters)
            assert not unknown, f"{name} {section}: unknown init_args {unknown}"


def test_dataset_reads_frames_sar_and_reports_missing_images(tmp_path: Path) -> None:
    from rsim.terrascope.data.datamodule import TerraCotDataset, segment_frames
    from rsim.terrascope.data.testing import write_cot_fixture

    assert segment_frames("Image: 2 a [SEG] b [SEG] Image: 1 [SEG]", 2) == [1, 1, 0]
    fx = write_cot_fixture(tmp_path, n_images=1, with_sar=True)
    ds = TerraCotDataset(fx.json_path)
    sample = ds[0]
    assert sample["images"].shape == (1, 48, 48, 3) and sample["sar"].shape == (1, 48, 48, 3)
    assert len(sample["masks"]) == sample["response"].count("[SEG]") == len(sample["seg_frames"])
    (tmp_path / "images" / "img_000.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"record 0 .*img_000.png is missing"):
        ds[0]


def test_cli_fit_with_demo_config(tmp_path: Path) -> None:
    import yaml
    from rsim.terrascope.data.testing import write_cot_fixture

    fx = write_cot_fixture(tmp_path / "cot", n_images=1)
    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "demo.yaml").read_text())
    cfg["trainer"].update(
        max_epochs=None, max_steps=2, default_root_dir=str(tmp_path / "run"), enable_progress_bar=False
    )
    cfg["trainer"]["callbacks"][2]["init_args"]["dirpath"] = str(tmp_path / "ckpt")
    cfg["data"]["init_args"]["train_json"] = str(fx.json_path)
    (tmp_path / "demo.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(tmp_path / "demo.yaml")]) == 0
    assert (tmp_path / "ckpt" / "demo.ckpt").is_file()
    from rsim.terrascope.data.testing import write_bench_fixture

    write_bench_fixture(tmp_path / "bench.parquet", n_images=1)
    assert (
        main(
            [
                "predict-bench",
                "--config",
                str(tmp_path / "demo.yaml"),
                "--ckpt",
                str(tmp_path / "ckpt" / "demo.ckpt"),
                "--bench",
                str(tmp_path / "bench.parquet"),
                "--out",
                str(tmp_path / "p.jsonl"),
                "--limit",
                "2",
                "--max-new-tokens",
                "4",
            ]
        )
        == 0
    )
    preds = load_predictions(tmp_path / "p.jsonl")
    assert [p.index for p in preds] == [0, 1] and all(p.text for p in preds)
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        main(
            [
                "predict-bench",
                "--config",
                str(tmp_path / "demo.yaml"),
                "--ckpt",
                str(tmp_path / "none.ckpt"),
                "--bench",
                str(tmp_path / "bench.parquet"),
                "--out",
                str(tmp_path / "q.jsonl"),
            ]
        )
