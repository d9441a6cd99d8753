from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from lightning.pytorch import Trainer
from rsim.core.errors import DataFormatError
from rsim.georank.cli import main
from rsim.georank.data.eurosat import (
    EUROSAT_CLASSES,
    EUROSAT_FILE_BANDS,
    EuroSATDataModule,
    eurosat_files,
    read_eurosat,
    split_from_files,
    stratified_split,
)
from rsim.georank.data.testing import write_eurosat_fixture
from rsim.georank.evaluation import extract_features, knn_accuracy
from rsim.georank.tasks import SingleLabelClassificationTask

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def eurosat(tmp_path_factory):
    root = tmp_path_factory.mktemp("eurosat")
    write_eurosat_fixture(root, per_class=5, seed=0)
    return root


def test_official_layout_reader_and_errors(eurosat, tmp_path):
    files, labels = eurosat_files(eurosat)
    assert len(files) == 50 and np.bincount(labels).tolist() == [5] * 10
    assert files[0] == eurosat / "EuroSAT_MS" / "AnnualCrop" / "AnnualCrop_1.tif" and files[-1].name == "SeaLake_5.tif"
    with rasterio.open(files[7]) as src:  # real georeferencing, 13 uint16 bands, 64 x 64 at 10 m
        raw = src.read()
        assert src.crs.to_epsg() in range(32601, 32661) and src.res == (10.0, 10.0) and raw.dtype == np.uint16
    assert raw.shape == (13, 64, 64)
    got = read_eurosat(files[7], ["B02", "B8A", "B12"])
    np.testing.assert_array_equal(got, raw[[1, 12, 11]])  # file order B01…B12, then B8A (13th)
    np.testing.assert_array_equal(read_eurosat(files[7]), raw)
    # the older allBands zip nests the class folders; the root may also be the class-folder parent itself
    nested = tmp_path / "ds" / "images" / "remote_sensing" / "otherDatasets" / "sentinel_2" / "tif"
    write_eurosat_fixture(tmp_path / "x", per_class=1, classes=("Forest",))
    nested.parent.mkdir(parents=True)
    (tmp_path / "x" / "EuroSAT_MS").rename(nested)
    nf, nl = eurosat_files(tmp_path)
    assert [f.name for f in nf] == ["Forest_1.tif"] and nl.tolist() == [EUROSAT_CLASSES.index("Forest")]
    assert len(eurosat_files(eurosat / "EuroSAT_MS")[0]) == 50
    with pytest.raises(FileNotFoundError, match="EuroSAT_MS"):
        eurosat_files(tmp_path / "nothing")
    bad = tmp_path / "three.tif"
    with rasterio.open(bad, "w", driver="GTiff", height=4, width=4, count=3, dtype="uint16") as dst:
        dst.write(np.ones((3, 4, 4), dtype=np.uint16))
    with pytest.raises(DataFormatError, match="three.tif has 3 bands, expected 13"):
        read_eurosat(bad)
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00garbage")
    with pytest.raises(DataFormatError, match="corrupt.tif"):
        read_eurosat(corrupt)
    with pytest.raises(FileNotFoundError, match="missing"):
        read_eurosat(tmp_path / "absent.tif")
    with pytest.raises(KeyError, match="VV"):
        read_eurosat(files[0], ["VV"])


def test_splits(eurosat, tmp_path):
    files, labels = eurosat_files(eurosat)
    split = stratified_split(labels, (0.6, 0.2, 0.2), seed=0)
    for c in range(10):  # 5 per class -> 3 / 1 / 1
        assert np.bincount(split[labels == c], minlength=3).tolist() == [3, 1, 1]
    assert np.array_equal(split, stratified_split(labels, seed=0))
    assert not np.array_equal(split, stratified_split(labels, seed=1))
    with pytest.raises(ValueError, match="sum"):
        stratified_split(labels, (0.5, 0.5, 0.5))
    for sid, name in enumerate(("train", "val", "test")):  # torchgeo's lists name the RGB .jpg files
        (tmp_path / f"eurosat-{name}.txt").write_text("\n".join(f.stem + ".jpg" for f in files[sid::3]) + "\n")
    assert split_from_files(files, tmp_path).tolist() == [i % 3 for i in range(50)]
    (tmp_path / "eurosat-test.txt").write_text("")
    with pytest.raises(DataFormatError, match="no split list"):
        split_from_files(files, tmp_path)


def test_datamodule_knn_accuracy_and_linear_probe(eurosat, tmp_path):
    dm = EuroSATDataModule(str(eurosat), img_size=32, batch_size=8, num_workers=0, augment=True)
    dm.setup()
    assert [len(dm.datasets[s]) for s in ("train", "validation", "test")] == [30, 10, 10]
    raw = next(iter(dm.val_dataloader()))
    out = dm.transform_batch(raw, train=False)
    assert out["image"].shape == (8, 10, 32, 32) and out["label"].dtype == torch.int64
    aug = dm.transform_batch(raw, train=True)
    assert aug["image"].shape == (8, 10, 32, 32)
    # the fixture's classes have distinct mean spectra: kNN on band means separates them
    tf, ty = extract_features(
        lambda x: x.mean((2, 3)), dm.train_dataloader(), lambda b: dm.transform_batch(b, train=False)
    )
    qf, qy = extract_features(
        lambda x: x.mean((2, 3)), dm.test_dataloader(), lambda b: dm.transform_batch(b, train=False)
    )
    assert ty.dtype == torch.int64 and tf.shape == (30, 10)
    res = knn_accuracy(tf, ty, qf, qy, k=3, temperature=0.1, num_classes=10)
    assert res["knn/acc"] >= 0.9 and set(res) == {"knn/acc", "knn/acc_macro"}
    rand = knn_accuracy(torch.randn(30, 4), ty, torch.randn(10, 4), qy, k=3)
    assert rand["knn/acc"] < res["knn/acc"]
    # linear probe: rsim-core's task with cross-entropy and accuracy, frozen backbone
    torch.manual_seed(0)
    task = SingleLabelClassificationTask(backbone="resnet10t", in_channels=10, freeze_backbone=True, drop_path_rate=0)
    before = task.model.conv1[0].weight.clone()
    trainer = Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=2, limit_val_batches=1, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(task, dm)
    assert torch.equal(before, task.model.conv1[0].weight)
    m = trainer.callback_metrics
    assert {"val/acc", "val/acc_macro", "train/loss"} <= set(m) and 0.0 <= float(m["val/acc"]) <= 1.0
    assert task.predict_step(out, 0)["probabilities"].sum(1).allclose(torch.ones(8))


@pytest.mark.parametrize(
    "name",
    [
        "demo.yaml", "linear_probe_benv2.yaml", "finetune_benv2.yaml", "linear_probe_eurosat.yaml",
        "finetune_eurosat.yaml", "ssl4eo_moco_georank.yaml", "ssl4eo_byol_georank.yaml", "ssl4eo_dino_georank.yaml",
        "ssl4eo_gassl.yaml", "benv2_lmdb_byol_georank.yaml",
    ],
)  # fmt: skip
def test_configs_parse_with_the_cli(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--config", str(CONFIGS / name), "--print_config"])
    assert exc.value.code == 0
    printed = capsys.readouterr().out
    assert "class_path" in printed and "seed_everything: 0" in printed


@pytest.mark.parametrize("name", ["linear_probe_eurosat.yaml", "finetune_eurosat.yaml"])
def test_eurosat_configs_fast_dev_run(name, eurosat, tmp_path):
    from rsim.georank.models import build_backbone
    from safetensors.torch import save_file

    bb, _ = build_backbone("resnet10t", 10)
    weights = tmp_path / "bb.safetensors"
    save_file({k: v.contiguous() for k, v in bb.state_dict().items()}, str(weights))
    args = [
        "fit", "--config", str(CONFIGS / name), f"--data.init_args.root={eurosat}", "--data.init_args.batch_size=4",
        "--data.init_args.num_workers=0", "--data.init_args.img_size=32", "--model.init_args.backbone=resnet10t",
        f"--model.init_args.weights={weights}", "--trainer.fast_dev_run=1", "--trainer.accelerator=cpu",
        "--trainer.precision=32", f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar=false",
    ]  # fmt: skip
    assert main(args) == 0


def test_eurosat_fixture_and_knn_verbs(tmp_path, capsys):
    from rsim.georank.models import build_backbone
    from safetensors.torch import save_file

    assert main(["fixture", "eurosat", str(tmp_path / "es"), "--locations", "5"]) == 0
    assert len(list((tmp_path / "es" / "EuroSAT_MS").glob("*/*.tif"))) == 50
    torch.manual_seed(0)
    bb, _ = build_backbone("resnet10t", 10)
    save_file({k: v.contiguous() for k, v in bb.state_dict().items()}, str(tmp_path / "bb.safetensors"))
    capsys.readouterr()
    argv = ["knn", str(tmp_path / "bb.safetensors"), str(tmp_path / "es"), "--dataset", "eurosat", "--backbone",
            "resnet10t", "--img-size", "32", "--k", "3"]  # fmt: skip
    assert main(argv) == 0
    lines = dict(line.split(": ") for line in capsys.readouterr().out.strip().splitlines())
    assert set(lines) == {"knn/acc", "knn/acc_macro"} and 0.0 <= float(lines["knn/acc"]) <= 1.0
    assert EUROSAT_FILE_BANDS[12] == "B8A" and EUROSAT_FILE_BANDS[8] == "B09"


def test_rico_hdl_lmdb_store_matches_geotiffs(eurosat, tmp_path):
    from rsim.georank.data.testing import write_eurosat_lmdb

    store = write_eurosat_lmdb(eurosat, tmp_path / "eurosat.lmdb")
    tif = EuroSATDataModule(str(eurosat), num_workers=0)
    mdb = EuroSATDataModule(lmdb=str(store), num_workers=0)
    tif.setup()
    mdb.setup()
    for split in ("train", "validation", "test"):
        a, b = tif.datasets[split], mdb.datasets[split]
        assert [Path(p).stem for p in a.items] == list(b.items) and np.array_equal(a.labels, b.labels)
    sa, sb = tif.datasets["test"][3], mdb.datasets["test"][3]
    np.testing.assert_array_equal(sa["image"], sb["image"])  # incl. B8A read from rico-hdl's "B08A" key
    assert sa["image"].shape == (10, 64, 64) and sa["label"] == sb["label"]
    with pytest.raises(ValueError, match="root"):
        EuroSATDataModule()
