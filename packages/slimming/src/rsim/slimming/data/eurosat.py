"""EuroSAT-format single-label folders: ``ROOT/<ClassName>/<anything>.tif`` (EuroSAT-MS: 13-band uint16 64×64)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.errors import RasterioIOError
from torch.utils.data import Dataset

__all__ = ["EUROSAT_BANDS", "EuroSATFolder", "split_indices"]

#: Band order of EuroSAT-MS GeoTIFFs (all 13 Sentinel-2 L1C bands, B8A last) [code: EuroSAT release].
EUROSAT_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A",
)  # fmt: skip


class EuroSATFolder(Dataset[dict[str, torch.Tensor]]):
    """A class-per-folder GeoTIFF dataset; classes are the sorted folder names.

    Items are ``{"image": float32 [C, H, W] raw values, "label": int64 scalar, "index": int64}``.

    Args:
        root: Folder holding one sub-folder per class.
        num_bands: Expected band count of every file (13 for EuroSAT-MS).
    """

    def __init__(self, root: str | os.PathLike[str], num_bands: int = 13) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"EuroSAT folder {self.root} does not exist")
        self.classes = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        if not self.classes:
            raise FileNotFoundError(f"EuroSAT folder {self.root} has no class sub-folders")
        self.files: list[tuple[Path, int]] = [
            (f, i) for i, c in enumerate(self.classes) for f in sorted((self.root / c).glob("*.tif"))
        ]
        if not self.files:
            raise FileNotFoundError(f"EuroSAT folder {self.root} holds no .tif files in {self.classes}")
        self.num_bands = num_bands

    def __len__(self) -> int:
        return len(self.files)

    @property
    def labels(self) -> np.ndarray:
        """Class index of every item."""
        return np.array([c for _, c in self.files], dtype=np.int64)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        path, label = self.files[index]
        try:
            with rasterio.open(path) as src:
                array = src.read()
        except RasterioIOError as err:
            raise ValueError(f"{path}: unreadable GeoTIFF ({err})") from err
        if array.shape[0] != self.num_bands:
            raise ValueError(f"{path}: {array.shape[0]} bands, expected {self.num_bands}")
        image = torch.from_numpy(array.astype(np.float32))
        if not torch.isfinite(image).all():
            raise ValueError(f"{path}: contains NaN or infinite values")
        return {"image": image, "label": torch.tensor(label), "index": torch.tensor(index)}


def split_indices(labels: np.ndarray, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded train/test split (EuroSAT ships no official split) [assumption]."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = max(1, round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
