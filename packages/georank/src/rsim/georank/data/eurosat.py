"""EuroSAT multispectral (EuroSAT MS, 13-band GeoTIFFs in class folders) reader and single-label data module.

Official layout of the EuroSAT MS release: ``<root>/EuroSAT_MS/<Class>/<Class>_<n>.tif`` (the older zip nests the
class folders under ``ds/images/remote_sensing/otherDatasets/sentinel_2/tif/``; ``root`` may also be the folder
holding the class folders itself). Every file is a 64×64 uint16 GeoTIFF with 13 Sentinel-2 L1C bands in UTM.
rico-hdl's EuroSAT MS LMDB store (key ``<Class>_<n>``, one safetensors dict of bands) is read as well. Workers
return the raw bands; resizing, normalisation and augmentation run in ``on_after_batch_transfer``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
import torch
from lightning.pytorch import LightningDataModule
from rasterio.errors import RasterioError
from rsim.core.data.nomenclature import band_presets
from rsim.core.data.transforms import BatchAugment
from rsim.core.errors import DataFormatError
from rsim.georank.data.transforms import PercentileStandardize
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

#: The 10 EuroSAT classes; the label id is the position (alphabetical, as the folder names sort).
EUROSAT_CLASSES: tuple[str, ...] = (
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
    "Pasture", "PermanentCrop", "Residential", "River", "SeaLake",
)  # fmt: skip
#: Band order inside the EuroSAT MS GeoTIFFs: B8A is the 13th band [third-party: phelber/EuroSAT issue #7,
#: torchgeo PR #2480 (torchgeo had B8A 9th before), rico-hdl's EuroSAT MS band keys].
EUROSAT_FILE_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A",
)  # fmt: skip
_NESTED = Path("ds/images/remote_sensing/otherDatasets/sentinel_2/tif")
Split = Literal["train", "validation", "test"]


def find_eurosat_folder(root: str | os.PathLike[str]) -> Path:
    """The folder holding the class folders (``root/EuroSAT_MS``, the nested allBands path, or ``root``).

    Raises:
        FileNotFoundError: No EuroSAT class folder is found.
    """
    root = Path(root)
    for cand in (root / "EuroSAT_MS", root / "EuroSAT_MS" / "EuroSAT_MS", root / _NESTED, root):
        if cand.is_dir() and any((cand / c).is_dir() for c in EUROSAT_CLASSES):
            return cand
    raise FileNotFoundError(
        f"no EuroSAT MS class folder under {root} (expected {root}/EuroSAT_MS/<Class>/<Class>_<n>.tif with classes "
        f"{', '.join(EUROSAT_CLASSES)})"
    )


def eurosat_files(root: str | os.PathLike[str]) -> tuple[list[Path], np.ndarray]:
    """All ``.tif`` files (sorted by class, then number) and their label ids."""
    folder = find_eurosat_folder(root)
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(EUROSAT_CLASSES):
        cdir = folder / name
        if not cdir.is_dir():
            continue
        found = sorted(cdir.glob("*.tif"), key=lambda p: (len(p.stem), p.stem))
        files += found
        labels += [label] * len(found)
    if not files:
        raise FileNotFoundError(f"EuroSAT folder {folder} holds no .tif files in its class folders")
    return files, np.asarray(labels, dtype=np.int64)


def read_eurosat(path: str | os.PathLike[str], bands: Sequence[str] | None = None) -> np.ndarray:
    """``(C, H, W)`` uint16 array of ``bands`` (default all 13) from one EuroSAT MS GeoTIFF.

    Raises:
        FileNotFoundError: The file is missing.
        DataFormatError: The file is unreadable or does not hold 13 bands.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"EuroSAT file {path} is missing")
    wanted = list(EUROSAT_FILE_BANDS if bands is None else bands)
    unknown = [b for b in wanted if b not in EUROSAT_FILE_BANDS]
    if unknown:
        raise KeyError(f"EuroSAT MS has no band(s) {unknown}; expected names from {list(EUROSAT_FILE_BANDS)}")
    try:
        with rasterio.open(path) as src:
            if src.count != len(EUROSAT_FILE_BANDS):
                raise DataFormatError(f"{path} has {src.count} bands, expected 13 (EuroSAT MS: B01…B12, then B8A)")
            return src.read([EUROSAT_FILE_BANDS.index(b) + 1 for b in wanted])
    except RasterioError as exc:
        raise DataFormatError(f"cannot read {path} ({exc}); expected a 13-band EuroSAT MS GeoTIFF") from exc


def stratified_split(labels: np.ndarray, fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0) -> np.ndarray:
    """Split id per sample (0 train, 1 validation, 2 test), drawn per class with a seeded permutation."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {list(fractions)}")
    rng = np.random.default_rng(seed)
    out = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_train = round(fractions[0] * len(idx))
        n_val = round(fractions[1] * len(idx))
        out[idx[:n_train]] = 0
        out[idx[n_train : n_train + n_val]] = 1
        out[idx[n_train + n_val :]] = 2
    return out


def split_from_files(files: Sequence[Path], split_dir: str | os.PathLike[str]) -> np.ndarray:
    """Split ids from ``eurosat-{train,val,test}.txt`` lists (file names, any extension; torchgeo's lists)."""
    split_dir = Path(split_dir)
    which: dict[str, int] = {}
    for sid, name in enumerate(("train", "val", "test")):
        path = split_dir / f"eurosat-{name}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"EuroSAT split list {path} is missing")
        which.update({Path(line.strip()).stem: sid for line in path.read_text().splitlines() if line.strip()})
    absent = [f.name for f in files if f.stem not in which]
    if absent:
        raise DataFormatError(f"{len(absent)} EuroSAT file(s) are in no split list of {split_dir}, e.g. {absent[:3]}")
    return np.asarray([which[f.stem] for f in files], dtype=np.int64)


#: Band key of the rico-hdl EuroSAT MS LMDB store (it spells B8A as ``B08A``).
RICO_BAND_KEY: dict[str, str] = {"B8A": "B08A"}


def lmdb_keys_and_labels(store: Any) -> tuple[list[str], np.ndarray]:
    """Keys (``<Class>_<n>``, rico-hdl's EuroSAT MS store) sorted by class then number, and their label ids.

    Raises:
        DataFormatError: A key does not start with a EuroSAT class name, or the store is empty.
    """
    keys, labels = [], []
    for key in store.keys():
        name = key.rsplit("_", 1)[0]
        if name not in EUROSAT_CLASSES:
            raise DataFormatError(f"LMDB store {store.path}: key {key!r} is not <Class>_<n> with a EuroSAT class")
        keys.append(key)
        labels.append(EUROSAT_CLASSES.index(name))
    if not keys:
        raise DataFormatError(f"LMDB store {store.path} holds no EuroSAT entries")
    order = sorted(range(len(keys)), key=lambda i: (labels[i], len(keys[i]), keys[i]))
    return [keys[i] for i in order], np.asarray([labels[i] for i in order], dtype=np.int64)


class EuroSATDataset(Dataset[dict[str, Any]]):
    """Samples ``{"image": (C, H, W) int32, "label": int, "index": int}`` of EuroSAT files or LMDB keys.

    Args:
        items: GeoTIFF paths, or keys of ``store``.
        labels: Label id per item.
        bands: Bands to read (EuroSAT file names, e.g. ``B8A``).
        store: A :class:`rsim.core.data.LmdbPatchStore` (rico-hdl EuroSAT MS format); ``None`` reads GeoTIFFs.
    """

    def __init__(
        self, items: Sequence[Path | str], labels: np.ndarray, bands: Sequence[str], store: Any = None
    ) -> None:
        self.items = list(items)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.bands = list(bands)
        self.store = store

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.store is None:
            image = read_eurosat(self.items[index], self.bands)
        else:
            arrays = self.store.read(str(self.items[index]), [RICO_BAND_KEY.get(b, b) for b in self.bands])
            image = np.stack([arrays[RICO_BAND_KEY.get(b, b)] for b in self.bands])
        return {"image": image.astype(np.int32), "label": int(self.labels[index]), "index": index}


class EuroSATDataModule(LightningDataModule):
    """EuroSAT MS single-label classification (10 classes, accuracy) for linear probes and fine-tuning.

    Args:
        root: Folder holding ``EuroSAT_MS/`` (or the class folders themselves); may be ``None`` with ``lmdb``.
        lmdb: rico-hdl's EuroSAT MS LMDB store (keys ``<Class>_<n>``, bands ``B01``…``B12``, ``B08A``), read
            instead of the GeoTIFFs.
        bands: Preset or band list (BigEarthNet spelling; ``S2`` = the paper's 10 bands, no B01/B09/B10).
        img_size: Output size (the files are 64×64; other sizes are bilinear resampling on the device).
        split_dir: Folder with ``eurosat-{train,val,test}.txt``; ``None`` draws a seeded stratified split.
        split_fractions: Train/validation/test fractions of the drawn split.
        split_seed: Seed of the drawn split.
        p99: Per-band divisor (default: the BigEarthNet "All" 99th percentiles).
        norm_mean: Per-band mean of ``x / p99`` (``None``: no standardisation).
        norm_std: Per-band std of ``x / p99``.
        augment: Flips and rot90 on training batches (fine-tuning).
        batch_size: Batch size.
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        root: str | None = None,
        lmdb: str | None = None,
        bands: str | list[str] = "S2",
        img_size: int = 64,
        split_dir: str | None = None,
        split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
        split_seed: int = 0,
        p99: dict[str, float] | None = None,
        norm_mean: list[float] | None = None,
        norm_std: list[float] | None = None,
        augment: bool = False,
        batch_size: int = 256,
        num_workers: int = 4,
    ) -> None:
        super().__init__()
        if root is None and lmdb is None:
            raise ValueError("EuroSATDataModule needs the GeoTIFF `root`, an `lmdb` store, or both")
        self.root = root
        self.lmdb = lmdb
        self.band_order = band_presets(bands) if isinstance(bands, str) else tuple(bands)
        unknown = [b for b in self.band_order if b not in EUROSAT_FILE_BANDS]
        if unknown or not self.band_order:
            raise ValueError(f"EuroSAT MS has no band(s) {unknown}; expected names from {list(EUROSAT_FILE_BANDS)}")
        self.num_channels = len(self.band_order)
        self.num_classes = len(EUROSAT_CLASSES)
        self.img_size = img_size
        self.split_dir = split_dir
        self.split_fractions = tuple(split_fractions)
        self.split_seed = split_seed
        self.normalize = PercentileStandardize.for_bands(self.band_order, p99, norm_mean, norm_std)
        self.augmenter = BatchAugment(img_size, flip_p=0.5, rot90_p=0.5, crop_scale=None) if augment else None
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.datasets: dict[str, EuroSATDataset] = {}

    def setup(self, stage: str | None = None) -> None:  # noqa: D102
        if self.datasets:
            return
        store = None
        items: list[Path | str]
        if self.lmdb is not None:
            from rsim.core.data import LmdbPatchStore

            store = LmdbPatchStore(self.lmdb)
            keys, labels = lmdb_keys_and_labels(store)
            items = list(keys)
        else:
            assert self.root is not None
            files, labels = eurosat_files(self.root)
            items = list(files)
        if self.split_dir is not None:
            split = split_from_files([Path(str(i)) for i in items], self.split_dir)
        else:
            split = stratified_split(labels, self.split_fractions, self.split_seed)
        for sid, name in enumerate(("train", "validation", "test")):
            keep = np.flatnonzero(split == sid)
            self.datasets[name] = EuroSATDataset([items[i] for i in keep], labels[keep], self.band_order, store)

    def _loader(self, split: Split, shuffle: bool) -> DataLoader[Any]:
        self.setup()
        ds = self.datasets[split]
        if len(ds) == 0:
            raise ValueError(
                f"EuroSAT split {split!r} is empty (root={self.root}, lmdb={self.lmdb}); check the split settings"
            )
        return DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("validation", shuffle=False)

    def test_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("test", shuffle=False)

    def transform_batch(self, batch: dict[str, Any], *, train: bool) -> dict[str, Any]:
        """Resize, normalise and (with ``train`` and ``augment``) flip/rotate a batch on its device."""
        image: Tensor = batch["image"].float()
        if tuple(image.shape[-2:]) != (self.img_size, self.img_size):
            image = torch.nn.functional.interpolate(image, size=(self.img_size,) * 2, mode="bilinear",
                                                    align_corners=False)  # fmt: skip
        image = self.normalize(image)
        if train and self.augmenter is not None:
            image = self.augmenter(image)
        return {"image": image, "label": batch["label"].long(), "index": batch["index"]}

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:  # noqa: D102
        training = self.trainer is not None and self.trainer.training
        return self.transform_batch(batch, train=training)


__all__ = [
    "EUROSAT_CLASSES",
    "EUROSAT_FILE_BANDS",
    "EuroSATDataModule",
    "EuroSATDataset",
    "eurosat_files",
    "find_eurosat_folder",
    "lmdb_keys_and_labels",
    "read_eurosat",
    "split_from_files",
    "stratified_split",
]
