"""A generic multi-label image data module (UCMerced, AID, DeepGlobe, synthetic) with NAR's noise injection.

Workers return raw ``uint8``/``float32`` CHW arrays; ``on_after_batch_transfer`` scales to [0, 1], resizes to
``img_size``, normalises and (training only) augments on the batch's device, then swaps in the noisy labels.
A transformed batch is ``{"image": (B, C, S, S), "label": (B, K), "index": (B,)}`` with ``index`` = row in the
split (stable across epochs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from rsim.core.data.transforms import BatchAugment, Normalize
from rsim.nar.data.noisy import NoiseInjection
from torch.utils.data import DataLoader, Dataset

__all__ = ["ImageTable", "MultiLabelImageDataModule", "MultiLabelImageDataset", "random_split_indices"]

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class ImageTable:
    """Every sample of a dataset: names, multi-hot labels and a picklable reader ``read(i) -> CHW array``."""

    names: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    read: Callable[[int], np.ndarray]
    source: str


class MultiLabelImageDataset(Dataset[dict[str, Any]]):
    """Samples ``{"image": CHW array, "label": (K,) float32, "index": row in this split}``."""

    def __init__(self, table: ImageTable, rows: np.ndarray) -> None:
        self.table = table
        self.rows = np.asarray(rows, dtype=np.int64)
        self.labels = table.labels[self.rows].astype(np.float32)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = self.table.read(int(self.rows[index]))
        return {"image": image, "label": self.labels[index], "index": index}


def random_split_indices(n: int, fractions: Sequence[float], seed: int) -> dict[str, np.ndarray]:
    """Seeded random train/validation/test rows (numpy Generator permutation, sorted within each split)."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"split_fractions must be three non-negative numbers summing to 1, got {list(fractions)}")
    order = np.random.default_rng(seed).permutation(n)
    n_train = round(fractions[0] * n)
    n_val = round(fractions[1] * n)
    parts = (order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :])
    return {split: np.sort(rows) for split, rows in zip(SPLITS, parts, strict=True)}


class MultiLabelImageDataModule(NoiseInjection, LightningDataModule):
    """Base data module: subclasses implement :meth:`load_table` (and optionally :meth:`split_rows`).

    Args:
        img_size: Output size in pixels (bilinear resize on the device).
        mean: Per-channel mean after scaling to [0, 1].
        std: Per-channel std after scaling to [0, 1].
        augment: Random flips and 90° rotations of training batches ([code] upstream default: none).
        split_fractions: Train/validation/test fractions of the seeded random split.
        split_seed: Seed of the split.
        add_rate: Additive noise rate on the training split.
        sub_rate: Subtractive noise rate on the training split.
        noise_seed: Seed of the noise draw.
        noise_file: Where the noisy matrix is saved (default ``<log_dir>/noisy_labels.npz``).
        batch_size: Batch size of every loader.
        num_workers: DataLoader worker processes.
    """

    def __init__(
        self,
        img_size: int = 256,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.25, 0.25, 0.25),
        augment: bool = False,
        split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
        split_seed: int = 2024,
        add_rate: float = 0.0,
        sub_rate: float = 0.0,
        noise_seed: int = 0,
        noise_file: str | None = None,
        batch_size: int = 128,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.init_noise(add_rate, sub_rate, noise_seed, noise_file)
        if len(mean) != len(std):
            raise ValueError(f"mean {list(mean)} and std {list(std)} must have one value per channel")
        self.img_size = img_size
        self.num_channels = len(mean)
        self.normalize = Normalize(torch.tensor(list(mean)), torch.tensor(list(std)))
        self.augmenter = BatchAugment(img_size, flip_p=0.5, rot90_p=0.5, crop_scale=None) if augment else None
        self.split_fractions = tuple(split_fractions)
        self.split_seed = split_seed
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.table: ImageTable | None = None
        self.datasets: dict[str, MultiLabelImageDataset] = {}

    # -- to implement ---------------------------------------------------------------------------------------
    def load_table(self) -> ImageTable:
        """Read the dataset's label table and return the reader of its images."""
        raise NotImplementedError(f"{type(self).__name__} must implement load_table()")

    def split_rows(self, table: ImageTable) -> dict[str, np.ndarray]:
        """Rows of each split (default: seeded random split with ``split_fractions``)."""
        return random_split_indices(len(table.names), self.split_fractions, self.split_seed)

    # -- Lightning --------------------------------------------------------------------------------------------
    @property
    def class_names(self) -> tuple[str, ...]:
        """Label names in column order."""
        if self.table is None:
            self.table = self.load_table()
        return self.table.class_names

    @property
    def num_classes(self) -> int:
        """Number of labels."""
        return len(self.class_names)

    @property
    def num_train_samples(self) -> int:
        """Rows of the training split."""
        if "train" not in self.datasets:
            self.setup("fit")
        return len(self.datasets["train"])

    def setup(self, stage: str | None = None) -> None:  # noqa: D102
        if self.table is None:
            self.table = self.load_table()
        if not self.datasets:
            rows = self.split_rows(self.table)
            for split in SPLITS:
                if len(rows[split]) == 0:
                    raise ValueError(
                        f"{self.table.source}: the {split} split is empty ({len(self.table.names)} samples)"
                    )
                self.datasets[split] = MultiLabelImageDataset(self.table, rows[split])
        self.apply_noise(self.datasets["train"].labels, source=f"{self.table.source} (train split)")

    def _loader(self, split: str, shuffle: bool) -> DataLoader[Any]:
        if split not in self.datasets:
            self.setup("fit")
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("validation", shuffle=False)

    def test_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("test", shuffle=False)

    def nrl_dataloader(self) -> DataLoader[Any]:
        """Training split in index order, for an eval-mode probability pass."""
        return self._loader("train", shuffle=False)

    def transform_batch(self, batch: dict[str, Any], *, train: bool) -> dict[str, Any]:
        """Scale, resize, normalise and (with ``train``) augment a collated batch on its device."""
        image = batch["image"]
        image = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
        if image.shape[-2:] != (self.img_size, self.img_size):
            image = F.interpolate(image, size=(self.img_size, self.img_size), mode="bilinear", align_corners=False)
        image = self.normalize(image)
        if train and self.augmenter is not None:
            image = self.augmenter(image)
        return {"image": image, "label": batch["label"].float(), "index": batch["index"]}

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:  # noqa: D102
        training = self.trainer is not None and self.trainer.training
        out = self.transform_batch(batch, train=training)
        if training:
            out = self.replace_train_labels(out)
        return out
