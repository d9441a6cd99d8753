import numpy as np
import pytest
import torch
from nar_helpers import DATA
from rsim.core.errors import DataFormatError, MissingKeyError
from rsim.nar.data import (
    AIDMultiLabelDataModule,
    DeepGlobeMultiLabelDataModule,
    NoisyBigEarthNetDataModule,
    UCMercedMultiLabelDataModule,
    generate_multilabel_images,
    write_deepglobe_labels,
)
from rsim.nar.data.release import UCM_ML_CLASSES, deepglobe_patch_labels
from rsim.nar.data.testing import write_aid_fixture, write_deepglobe_fixture, write_ucmerced_fixture


def _check_batches(dm, num_classes, img_size):
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    out = dm.replace_train_labels(dm.transform_batch(batch, train=True))
    assert out["image"].shape[1:] == (3, img_size, img_size) and out["image"].dtype == torch.float32
    assert out["label"].shape[1] == num_classes
    np.testing.assert_array_equal(out["label"].numpy(), dm.noisy_labels.noisy[out["index"].numpy()])
    np.testing.assert_array_equal(out["clean_label"].numpy(), dm.noisy_labels.clean[out["index"].numpy()])
    val = dm.transform_batch(next(iter(dm.val_dataloader())), train=False)
    assert val["label"].shape[1] == num_classes


def test_ucmerced_release(tmp_path):
    root = write_ucmerced_fixture(tmp_path / "ucm")
    dm = UCMercedMultiLabelDataModule(
        str(root), img_size=32, batch_size=4, sub_rate=0.4, noise_file=str(tmp_path / "n.npz")
    )
    assert dm.class_names == UCM_ML_CLASSES and dm.num_classes == 17
    _check_batches(dm, 17, 32)
    assert sum(len(d) for d in dm.datasets.values()) == 20
    # a short image (29 px) was edge-padded to 256 so that it collates
    assert dm.table.read(0).shape == (3, 256, 256)


def test_aid_release_and_bad_tables(tmp_path):
    root = write_aid_fixture(tmp_path / "aid")
    dm = AIDMultiLabelDataModule(str(root), img_size=32, batch_size=4, add_rate=0.4, noise_file=str(tmp_path / "n.npz"))
    _check_batches(dm, 17, 32)
    table = (root / "multilabel.csv").read_text().splitlines()
    (root / "multilabel.csv").write_text(
        "\n".join([table[0].replace(",water", "")] + [r.rsplit(",", 1)[0] for r in table[1:]])
    )
    with pytest.raises(DataFormatError, match=r"multilabel.csv: class columns \['water'\] are missing"):
        AIDMultiLabelDataModule(str(root)).setup("fit")
    (root / "multilabel.csv").write_text("\n".join([*table[:2], "ghost_9," + ",".join(["0"] * 16 + ["1"])]))
    with pytest.raises(MissingKeyError, match="'ghost_9'"):
        AIDMultiLabelDataModule(str(root)).setup("fit")
    (root / "multilabel.csv").write_text(
        "\n".join([table[0]] + [",".join([r.split(",")[0]] + ["0"] * 17) for r in table[1:]])
    )
    with pytest.raises(DataFormatError, match="every label is empty"):
        AIDMultiLabelDataModule(str(root)).setup("fit")


def test_corrupt_image_names_the_file(tmp_path):
    root = write_aid_fixture(tmp_path / "aid", per_scene=2)
    victim = next((root / "images").rglob("*.jpg"))
    victim.write_bytes(b"not a jpeg")
    dm = AIDMultiLabelDataModule(str(root), split_fractions=(1.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="validation split is empty"):
        dm.setup("fit")
    table = AIDMultiLabelDataModule(str(root)).load_table()
    row = [str(n) for n in table.names].index(victim.stem)
    with pytest.raises(DataFormatError, match=victim.name):
        table.read(row)


def test_deepglobe_release_labels_and_patches(tmp_path):
    root = write_deepglobe_fixture(tmp_path / "dg", num_images=3, size=64)
    one = deepglobe_patch_labels(next((root / "train").glob("*_mask.png")), 16, 0.0)
    assert len(one) <= 16 and one[list(one.columns[3:])].to_numpy().sum(1).min() >= 1
    dm = DeepGlobeMultiLabelDataModule(
        str(root), patch_size=16, img_size=16, batch_size=4, sub_rate=0.4, noise_file=str(tmp_path / "n.npz")
    )
    with pytest.raises(FileNotFoundError, match="nar deepglobe-labels"):
        dm.setup("fit")
    out = write_deepglobe_labels(root, patch_size=16, n_workers=1)
    assert out.name == "labels_16.csv"
    _check_batches(dm, 6, 16)


def test_noisy_bigearthnet_on_real_v1_examples(tmp_path):
    if not (DATA / "benv1-examples").is_dir():
        pytest.skip("shared sample data absent")
    dm = NoisyBigEarthNetDataModule(
        root=str(DATA / "benv1-examples"),
        version=1,
        metadata=str(DATA / "benv2" / "metadata" / "metadata.parquet"),
        bands="S2",
        img_size=32,
        batch_size=3,
        num_workers=0,
        persistent_workers=False,
        sub_rate=1.0,
        noise_file=str(tmp_path / "ben_noisy.npz"),
    )
    dm.setup("fit")
    noisy = dm.noisy_labels
    assert noisy.noisy.shape == (dm.num_train_samples, 19)
    assert noisy.noisy.sum() == 0 and noisy.clean.sum() > 0  # sub_rate 1 removes every positive
    batch = dm.transform_batch(next(iter(dm.train_dataloader())), train=True)
    out = dm.replace_train_labels(batch)
    assert out["label"].sum() == 0 and out["clean_label"].sum() > 0
    # the saved file is reused; other rates are refused with a clear message
    again = NoisyBigEarthNetDataModule(
        root=str(DATA / "benv1-examples"),
        version=1,
        metadata=str(DATA / "benv2" / "metadata" / "metadata.parquet"),
        sub_rate=0.5,
        noise_file=str(tmp_path / "ben_noisy.npz"),
        num_workers=0,
    )
    with pytest.raises(ValueError, match="sub_rate=1.0"):
        again.setup("fit")


def test_generated_dataset_is_seeded():
    a_img, a_lab = generate_multilabel_images(50, 5, seed=3)
    b_img, _b_lab = generate_multilabel_images(50, 5, seed=3)
    np.testing.assert_array_equal(a_img, b_img)
    assert a_lab.sum(1).min() >= 1 and a_img.dtype == np.uint8
    with pytest.raises(ValueError, match="patch_size"):
        generate_multilabel_images(5, 2, img_size=8, patch_size=10)
