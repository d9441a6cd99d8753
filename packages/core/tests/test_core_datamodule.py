from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from core_paths import BENV2, S2_SAMPLE
from rsim.core.data import BigEarthNetDataModule
from rsim.core.data.stats import band_stats
from rsim.core.data.transforms import BatchAugment, Normalize, stack_bands


def _dm(**kwargs):  # type: ignore[no-untyped-def]
    defaults = {"num_workers": 0, "batch_size": 4, "augment": False}
    return BigEarthNetDataModule(**{**defaults, **kwargs})


def test_geotiff_and_lmdb_give_the_same_batches(benv2_fixture, benv2_lmdb) -> None:  # type: ignore[no-untyped-def]
    meta = str(benv2_fixture.metadata_path)
    tif = _dm(root=str(benv2_fixture.root), bands="S1S2", reference_maps=True)
    mdb = _dm(lmdb=str(benv2_lmdb), metadata=meta, bands="S1S2", reference_maps=True)
    for split_loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        torch.manual_seed(1)
        a = list(getattr(tif, split_loader)())
        torch.manual_seed(1)
        b = list(getattr(mdb, split_loader)())
        assert len(a) == len(b) > 0
        for x, y in zip(a, b, strict=True):
            assert x["bands"].keys() == y["bands"].keys()
            for band in x["bands"]:
                assert x["bands"][band].dtype == y["bands"][band].dtype
                assert torch.equal(x["bands"][band], y["bands"][band])
            assert torch.equal(x["label"], y["label"]) and torch.equal(x["reference_map"], y["reference_map"])
            assert torch.equal(
                tif.transform_batch(x, train=False)["image"], mdb.transform_batch(y, train=False)["image"]
            )


def test_splits_labels_and_snow_cloud_filter(benv2_fixture) -> None:  # type: ignore[no-untyped-def]
    dm = _dm(root=str(benv2_fixture.root))
    dm.setup(None)
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 4, "validation": 2, "test": 2}
    unfiltered = _dm(root=str(benv2_fixture.root), filter_snow_cloud=False,
                     snow_cloud_metadata=str(benv2_fixture.snow_cloud_path))  # fmt: skip
    unfiltered.setup("fit")
    assert len(unfiltered.datasets["train"]) == 5
    sample = dm.datasets["train"][0]
    labels = benv2_fixture.metadata["labels"].iloc[0]
    assert [dm.label_names[i] for i in np.flatnonzero(sample["label"])] == [n for n in dm.label_names if n in labels]


def test_batch_is_raw_then_transformed_on_device(benv2_fixture) -> None:  # type: ignore[no-untyped-def]
    dm = _dm(root=str(benv2_fixture.root), bands="S2")
    batch = next(iter(dm.train_dataloader()))
    assert batch["bands"]["B02"].dtype == torch.uint16 and batch["bands"]["B05"].shape == (4, 60, 60)
    out = dm.transform_batch(batch, train=False)
    assert out["image"].shape == (4, 10, 120, 120) and out["image"].dtype == torch.float32
    mean, std = band_stats("benv2_train_120_bilinear", dm.band_order)
    b05 = F.interpolate(batch["bands"]["B05"][:, None].float(), size=(120, 120), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out["image"][:, 4:5], (b05 - mean[4]) / std[4])
    assert out["label"].shape == (4, 19)


def test_presets_and_augmentation(benv2_fixture) -> None:  # type: ignore[no-untyped-def]
    for preset, channels in {"S1": 2, "RGB": 3, "S1S2": 12, "S2_ALL": 12}.items():
        dm = _dm(root=str(benv2_fixture.root), bands=preset, augment=True, img_size=64)
        batch = next(iter(dm.train_dataloader()))
        plain = dm.transform_batch(batch, train=False)["image"]
        torch.manual_seed(3)
        aug = dm.transform_batch(batch, train=True)["image"]
        assert plain.shape == aug.shape == (4, channels, 64, 64)
        assert not torch.equal(plain, aug)


def test_workers_pin_memory_and_persistent_workers(benv2_fixture, benv2_lmdb) -> None:  # type: ignore[no-untyped-def]
    for kwargs in (
        {"root": str(benv2_fixture.root)},
        {"lmdb": str(benv2_lmdb), "metadata": str(benv2_fixture.metadata_path)},
    ):
        dm = BigEarthNetDataModule(**kwargs, bands="S1S2", num_workers=2, persistent_workers=True, pin_memory=True,
                                   batch_size=2, augment=False)  # fmt: skip
        loader = dm.val_dataloader()
        assert loader.persistent_workers
        first = [b["label"] for b in loader]
        second = [b["label"] for b in loader]  # the same persistent workers serve the second epoch
        assert len(first) == 1 and torch.equal(first[0], second[0])


def test_real_v2_sample_through_the_datamodule() -> None:
    dm = _dm(root=str(BENV2), limit_to_available=True, bands="S2")
    dm.setup("validate")
    dataset = dm.datasets["validation"]
    assert list(dataset.table.s2_keys) == [S2_SAMPLE]
    out = dm.transform_batch(next(iter(dm.val_dataloader())), train=False)
    assert out["image"].shape == (1, 10, 120, 120) and out["label"].sum() == 3
    with pytest.raises(ValueError, match="split 'validation' is empty"):
        _dm(root=str(BENV2), limit_to_available=True, bands="S1S2").setup("validate")
    with pytest.raises(ValueError, match="needs a GeoTIFF root, an LMDB store"):
        BigEarthNetDataModule()


def test_stack_bands_normalize_and_augment_units() -> None:
    bands = {"B02": torch.arange(16.0).reshape(1, 4, 4), "B05": torch.ones(1, 2, 2)}
    x = stack_bands(bands, ["B05", "B02"], 4, "nearest")
    assert torch.equal(x[0, 1], bands["B02"][0]) and torch.equal(x[0, 0], torch.ones(4, 4))
    with pytest.raises(KeyError, match="B03"):
        stack_bands(bands, ["B03"], 4)
    norm = Normalize(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(norm(torch.full((1, 2, 1, 1), 3.0)).flatten(), torch.tensor([1.0, 0.25]))
    with pytest.raises(ValueError, match="std"):
        Normalize(torch.zeros(1), torch.zeros(1))
    flip_only = BatchAugment(4, flip_p=1.0, rot90_p=0.0, crop_scale=None)
    y = flip_only(x)
    torch.testing.assert_close(y, x.flip(-1).flip(-2))


def test_reference_map_is_augmented_with_the_image() -> None:
    torch.manual_seed(5)
    codes = torch.randint(100, 500, (6, 16, 16), dtype=torch.int32)
    image = torch.stack([codes.float(), -codes.float()], dim=1)
    aug = BatchAugment(16, flip_p=0.5, rot90_p=0.5, crop_scale=None)
    out, mask = aug(image, codes)
    assert mask.dtype == torch.int32 and not torch.equal(mask, codes)
    torch.testing.assert_close(out[:, 0], mask.float())
    cropper = BatchAugment(16, flip_p=0.0, rot90_p=0.0, crop_scale=(0.3, 0.5))
    cropped, cmask = cropper(image, codes)
    assert cropped.shape == image.shape and cmask.shape == codes.shape
    assert set(cmask.unique().tolist()) <= set(codes.unique().tolist())  # nearest: no invented codes


def test_datamodule_augments_reference_maps_in_training(benv2_fixture) -> None:  # type: ignore[no-untyped-def]
    dm = _dm(root=str(benv2_fixture.root), bands="RGB", reference_maps=True, augment=True, crop_scale=None)
    batch = next(iter(dm.train_dataloader()))
    torch.manual_seed(0)
    out = dm.transform_batch(batch, train=True)
    assert out["reference_map"].shape == (4, 120, 120)
    plain = dm.transform_batch(batch, train=False)
    assert torch.equal(plain["reference_map"], batch["reference_map"])
    assert not torch.equal(out["reference_map"].to(batch["reference_map"].dtype), batch["reference_map"])
