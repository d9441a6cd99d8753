"""Datasets (raw arrays only) and the data module that scales, crops and flips batches on the device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from rsim.core.errors import DataFormatError
from rsim.hyvic.data.formats import (
    HYSPECNET_BANDS,
    HYSPECNET_RAW_BANDS,
    hyspecnet_files,
    hyspecnet_to_reflectance,
    mlretset_files,
    read_geotiff,
    read_hyspecnet_patch,
    read_mlretset_mat,
    read_s2_folder,
)
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

DATASETS = ("hyspecnet", "mlretset", "raster")


class HySpecNetDataset(Dataset[dict[str, Any]]):
    """HySpecNet-11k patches of one split; items are raw int16 (224, H, W) or float32 (202, H, W) arrays."""

    def __init__(self, root: str | Path, split_mode: str = "easy", split: str = "train", source: str = "auto"):
        self.files = hyspecnet_files(root, split_mode, split, source=source)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": read_hyspecnet_patch(self.files[i]), "index": i}


class MLRetSetDataset(Dataset[dict[str, Any]]):
    """MLRetSet ``.mat`` images of one split; items are float32 (369, H, W) arrays."""

    def __init__(self, root: str | Path, split: str = "train", bands: int = 369) -> None:
        self.files = mlretset_files(root, split)
        self.bands = bands

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": read_mlretset_mat(self.files[i], bands=self.bands), "index": i}


class RasterPatchDataset(Dataset[dict[str, Any]]):
    """Non-overlapping patches of one in-memory raster (multi-band GeoTIFF or Sentinel-2 band folder).

    Patches are assigned to ``train``/``val`` by row: the last ``val_fraction`` of patch rows is validation.
    """

    def __init__(
        self,
        path: str | Path,
        patch_size: int,
        split: str = "train",
        val_fraction: float = 0.25,
        grid: int = 10,
    ) -> None:
        path = Path(path)
        raster = read_s2_folder(path, grid=grid) if path.is_dir() else read_geotiff(path)
        self.data = raster.data
        _, h, w = self.data.shape
        if h < patch_size or w < patch_size:
            raise DataFormatError(f"{path}: raster {h}x{w} is smaller than patch_size {patch_size}")
        rows = list(range(0, h - patch_size + 1, patch_size))
        n_val = max(1, round(len(rows) * val_fraction)) if len(rows) > 1 and val_fraction > 0 else 0
        use = rows[: len(rows) - n_val] if split == "train" else rows[len(rows) - n_val :] or rows
        self.windows = [(r, c) for r in use for c in range(0, w - patch_size + 1, patch_size)]
        self.patch_size = patch_size

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        r, c = self.windows[i]
        p = self.patch_size
        return {"image": np.ascontiguousarray(self.data[:, r : r + p, c : c + p]), "index": i}


def _crop(x: Tensor, size: int, random: bool, generator: torch.Generator | None = None) -> Tensor:
    h, w = x.shape[-2:]
    if size > h or size > w:
        raise ValueError(f"crop size {size} exceeds the patch {h}x{w}")
    if not random:
        r, c = (h - size) // 2, (w - size) // 2
        return x[..., r : r + size, c : c + size]
    out = []
    for b in range(x.shape[0]):
        r = int(torch.randint(0, h - size + 1, (1,), generator=generator))
        c = int(torch.randint(0, w - size + 1, (1,), generator=generator))
        out.append(x[b, :, r : r + size, c : c + size])
    return torch.stack(out)


class HyperspectralDataModule(LightningDataModule):
    """Data module for HySpecNet-11k, MLRetSet or any multi-band raster.

    Workers only read raw arrays; conversion to [0, 1] (band dropping and /10000 for raw HySpecNet TIFFs,
    ``scale`` for rasters and MLRetSet), cropping and flipping run in
    ``on_after_batch_transfer`` on the device.

    Args:
        dataset: ``hyspecnet``, ``mlretset`` or ``raster``.
        root: Dataset root (``hyspecnet``/``mlretset``), or a GeoTIFF / Sentinel-2 band folder (``raster``).
        split_mode: HySpecNet-11k split (``easy`` patch-wise, ``hard`` tile-wise).
        source: HySpecNet-11k file form: ``auto``, ``npy`` or ``tif``.
        crop_size: Training crop (random) and evaluation crop (centre); ``None`` keeps full patches.
        scale: Divisor mapping raster/MLRetSet values to [0, 1] (then clipped); raw HySpecNet uses 10000.
        patch_size: Patch size cut from a ``raster`` input.
        grid: Sentinel-2 folder grid in metres (10: 4 bands, 20: 10 bands).
        val_fraction: Share of patch rows held out for validation (``raster``).
        flip: Random horizontal/vertical flips in training.
        batch_size: Batch size.
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        dataset: str = "raster",
        root: str = "shared/data/s2-l1c-crop",
        split_mode: str = "easy",
        source: str = "auto",
        crop_size: int | None = None,
        scale: float = 10000.0,
        patch_size: int = 128,
        grid: int = 10,
        val_fraction: float = 0.25,
        flip: bool = True,
        batch_size: int = 8,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
        self.save_hyperparameters()
        self.dataset, self.root, self.crop_size, self.scale = dataset, root, crop_size, scale
        self._sets: dict[str, Dataset[dict[str, Any]]] = {}

    def _make(self, split: str) -> Dataset[dict[str, Any]]:
        hp = self.hparams
        if self.dataset == "hyspecnet":
            return HySpecNetDataset(self.root, hp["split_mode"], split, hp["source"])
        if self.dataset == "mlretset":
            return MLRetSetDataset(self.root, split)
        return RasterPatchDataset(
            self.root,
            hp["patch_size"],
            "train" if split == "train" else "val",
            hp["val_fraction"],
            hp["grid"],
        )

    def get(self, split: str) -> Dataset[dict[str, Any]]:
        """The dataset of ``split`` (``train``/``val``/``test``), built on first use."""
        if split not in self._sets:
            self._sets[split] = self._make(split)
        return self._sets[split]

    def _loader(self, split: str) -> DataLoader[dict[str, Any]]:
        return DataLoader(
            self.get(split),
            batch_size=self.hparams["batch_size"],
            shuffle=split == "train",
            num_workers=self.hparams["num_workers"],
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader[dict[str, Any]]:  # noqa: D102
        return self._loader("train")

    def val_dataloader(self) -> DataLoader[dict[str, Any]]:  # noqa: D102
        return self._loader("val")

    def test_dataloader(self) -> DataLoader[dict[str, Any]]:  # noqa: D102
        return self._loader("test")

    def to_unit(self, image: Tensor) -> Tensor:
        """Convert a raw batch to float [0, 1] on its device."""
        if self.dataset == "hyspecnet":
            if image.shape[1] == HYSPECNET_RAW_BANDS:
                return hyspecnet_to_reflectance(image)
            if image.shape[1] != HYSPECNET_BANDS:
                raise DataFormatError(f"HySpecNet-11k batch has {image.shape[1]} bands, expected 224 or 202")
            return image.float()
        return (image.float() / self.scale).clamp(0.0, 1.0)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """Scale to [0, 1], crop (random in training, centre otherwise) and flip, on the batch's device."""
        x = self.to_unit(batch["image"])
        training = self.trainer is not None and self.trainer.training
        if self.crop_size is not None:
            x = _crop(x, self.crop_size, random=training)
        if training and self.hparams["flip"]:
            if bool(torch.rand(()) < 0.5):
                x = x.flip(-1)
            if bool(torch.rand(()) < 0.5):
                x = x.flip(-2)
        return {**batch, "image": x.contiguous()}


__all__ = ["HySpecNetDataset", "HyperspectralDataModule", "MLRetSetDataset", "RasterPatchDataset"]
