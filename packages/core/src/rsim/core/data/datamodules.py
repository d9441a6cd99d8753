"""``BigEarthNetDataModule``: BigEarthNet v1/v2 from the GeoTIFF tree or an LMDB store, transforms on the device."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule
from rsim.core.data.bigearthnet import (
    BigEarthNetDataset,
    BigEarthNetV1Tree,
    BigEarthNetV2Tree,
    PatchReader,
    PatchTable,
    available_mask,
    find_metadata,
    load_metadata,
    v1_patch_table,
)
from rsim.core.data.lmdb_store import LmdbPatchStore
from rsim.core.data.nomenclature import LabelOrder, band_presets, label_names
from rsim.core.data.stats import band_stats
from rsim.core.data.transforms import BatchAugment, Interpolation, Normalize, stack_bands
from torch.utils.data import DataLoader

Stage = Literal["fit", "validate", "test", "predict"]


class BigEarthNetDataModule(LightningDataModule):
    """BigEarthNet multi-label classification data (official splits, 19 classes, snow/cloud filter).

    Workers return raw arrays at native resolution; ``on_after_batch_transfer`` stacks the bands, resamples them to
    ``img_size``, normalises and (in training) augments on the batch's device. A transformed batch is
    ``{"image": (B, C, img_size, img_size) float32, "label": (B, 19) float32, "index": (B,)}``.

    Args:
        root: v2: the archive root (``BigEarthNet-S1/``, ``BigEarthNet-S2/``, ``Reference_Maps/``). v1: the folder
            holding ``BigEarthNet-v1.0/`` (or ``BigEarthNet-S2-Example/``) and its S1 sibling. May be ``None``
            when ``lmdb`` is given.
        lmdb: An LMDB store written by ``rsim encode bigearthnet`` or rico-hdl; read instead of the GeoTIFFs.
        version: BigEarthNet version, 2 (reBEN) or 1.
        metadata: v2 ``metadata.parquet``; default ``root/metadata.parquet`` or ``root/metadata/metadata.parquet``.
            For v1 it provides the splits through ``s2v1_name`` unless ``v1_split_dir`` is given.
        snow_cloud_metadata: The snow/cloud/shadow parquet, used only with ``filter_snow_cloud=False``.
        v1_split_dir: Folder with the v1 ``train.csv``, ``val.csv``, ``test.csv`` (first column = S2 name).
        bands: Preset (``S1``, ``S2``, ``S1S2``, ``RGB``, ``S2_ALL``) or a list of band names (channel order).
        img_size: Output size in pixels (120 = 10 m).
        interpolation: Resampling of the 20 m and 60 m bands.
        label_order: ``clc`` (CLC-code order, the default) or ``alphabetical`` (ConfigILM / BIFOLD checkpoints).
        filter_snow_cloud: Exclude patches with seasonal snow or cloud/shadow.
        normalization: Name of a statistics table in :mod:`rsim.core.data.stats`, or ``None``.
        augment: Apply flips, rot90 and random resized crops to training batches.
        flip_p: Probability of each flip.
        rot90_p: Probability of a 90° rotation.
        crop_scale: Area range of the random resized crop (``None`` disables it).
        limit_to_available: Keep only patches present on disk/in the store (for partial downloads and samples).
        reference_maps: Also load the CLC reference maps (v2 only).
        batch_size: Batch size of every loader.
        num_workers: DataLoader worker processes.
        pin_memory: Pin host memory for faster transfer.
        persistent_workers: Keep workers alive between epochs (with ``num_workers > 0``).
        predict_split: Split used by ``predict``.
    """

    def __init__(
        self,
        root: str | None = None,
        lmdb: str | None = None,
        version: Literal[1, 2] = 2,
        metadata: str | None = None,
        snow_cloud_metadata: str | None = None,
        v1_split_dir: str | None = None,
        bands: str | list[str] = "S2",
        img_size: int = 120,
        interpolation: Interpolation = "bilinear",
        label_order: LabelOrder = "clc",
        filter_snow_cloud: bool = True,
        normalization: str | None = "benv2_train_120_bilinear",
        augment: bool = True,
        flip_p: float = 0.5,
        rot90_p: float = 0.5,
        crop_scale: tuple[float, float] | None = (0.8, 1.0),
        limit_to_available: bool = False,
        reference_maps: bool = False,
        batch_size: int = 32,
        num_workers: int = 4,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        predict_split: Literal["train", "validation", "test"] = "test",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if root is None and lmdb is None:
            raise ValueError("BigEarthNetDataModule needs a GeoTIFF root, an LMDB store, or both")
        if version not in (1, 2):
            raise ValueError(f"version must be 1 or 2, got {version!r}")
        if reference_maps and version == 1:
            raise ValueError("reference_maps=True needs BigEarthNet v2: v1 ships no reference maps")
        self.root = root
        self.lmdb = lmdb
        self.version = version
        self.metadata_path = metadata
        self.snow_cloud_metadata = snow_cloud_metadata
        self.v1_split_dir = v1_split_dir
        self.filter_snow_cloud = filter_snow_cloud
        self.limit_to_available = limit_to_available
        self.reference_maps = reference_maps
        self.predict_split = predict_split
        self.band_order = band_presets(bands)
        self.img_size = img_size
        self.interpolation = interpolation
        self.label_order = label_order
        self.label_names = label_names(label_order)
        self.num_classes = len(self.label_names)
        self.num_channels = len(self.band_order)
        self.normalization = normalization
        self.normalize = Normalize(*band_stats(normalization, self.band_order)) if normalization else None
        self.augmenter = (
            BatchAugment(img_size, flip_p=flip_p, rot90_p=rot90_p, crop_scale=crop_scale) if augment else None
        )
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.datasets: dict[str, BigEarthNetDataset] = {}

    # -- construction ---------------------------------------------------------------------------------------
    def reader(self) -> PatchReader:
        """The source of raw arrays: the LMDB store when given, else the GeoTIFF tree."""
        if self.lmdb is not None:
            return LmdbPatchStore(self.lmdb)
        assert self.root is not None
        if self.version == 1:
            return BigEarthNetV1Tree.from_root(self.root)
        return BigEarthNetV2Tree(self.root)

    def _metadata_file(self) -> Path:
        if self.metadata_path is not None:
            return Path(self.metadata_path)
        if self.root is None:
            raise FileNotFoundError("pass `metadata` (the v2 metadata.parquet) when reading from an LMDB store only")
        return find_metadata(self.root)

    def build_table(self, split: str) -> PatchTable:
        """Patches and labels of ``split`` (``train``, ``validation`` or ``test``)."""
        if self.version == 1:
            tree = BigEarthNetV1Tree.from_root(self.root) if self.root else None
            if tree is None:
                raise ValueError("BigEarthNet v1 needs `root` (labels come from the v1 JSON files)")
            if self.v1_split_dir is not None:
                csv = Path(self.v1_split_dir) / {"validation": "val.csv"}.get(split, f"{split}.csv")
                return v1_patch_table(tree, split=split, split_csv=csv, label_order=self.label_order)
            meta = load_metadata(self._metadata_file(), filter_snow_cloud=self.filter_snow_cloud)
            return v1_patch_table(tree, split=split, metadata=meta, label_order=self.label_order)
        meta = load_metadata(
            self._metadata_file(),
            snow_cloud_path=self.snow_cloud_metadata,
            filter_snow_cloud=self.filter_snow_cloud,
        )
        table = PatchTable.from_metadata(meta, split, label_order=self.label_order, source=str(self._metadata_file()))
        if self.limit_to_available:
            table = table.subset(available_mask(table, self._present(), self.band_order))
        return table

    def _present(self) -> dict[str, set[str]]:
        if self.lmdb is not None:
            keys = set(LmdbPatchStore(self.lmdb).keys())
            return {"S1": keys, "S2": keys}
        tree = BigEarthNetV2Tree(self.root)  # type: ignore[arg-type]
        return {"S1": tree.available_s1(), "S2": tree.available_s2()}

    def setup(self, stage: str | None = None) -> None:  # noqa: D102
        wanted = {
            "fit": ("train", "validation"),
            "validate": ("validation",),
            "test": ("test",),
            "predict": (self.predict_split,),
            None: ("train", "validation", "test"),
        }[stage]
        for split in wanted:
            self._ensure(split)

    def _ensure(self, split: str) -> BigEarthNetDataset:
        """Build (once) and return the dataset of ``split``."""
        if split not in self.datasets:
            table = self.build_table(split)
            if len(table) == 0:
                raise ValueError(
                    f"BigEarthNet split {split!r} is empty (root={self.root}, lmdb={self.lmdb}); "
                    "check the paths, the split, or set limit_to_available"
                )
            self.datasets[split] = BigEarthNetDataset(
                self.reader(), table, self.band_order, reference_maps=self.reference_maps
            )
        return self.datasets[split]

    def _loader(self, split: str, shuffle: bool) -> DataLoader[Any]:
        return DataLoader(
            self._ensure(split),
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.persistent_workers,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("validation", shuffle=False)

    def test_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader(self.predict_split, shuffle=False)

    # -- device side -----------------------------------------------------------------------------------------
    def transform_batch(self, batch: dict[str, Any], *, train: bool) -> dict[str, Any]:
        """Stack, resample, normalise and (with ``train``) augment a collated batch on its device."""
        image = stack_bands(batch["bands"], self.band_order, self.img_size, self.interpolation)
        if self.normalize is not None:
            image = self.normalize(image)
        reference_map = batch.get("reference_map")
        if train and self.augmenter is not None:
            if reference_map is None:
                image = self.augmenter(image)
            else:  # the same flips, rotations and crops for the CLC map (nearest), e.g. for segmentation
                image, reference_map = self.augmenter(image, reference_map.to(torch.int32))
        out = {"image": image, "label": batch["label"].float(), "index": batch["index"]}
        if reference_map is not None:
            out["reference_map"] = reference_map
        return out

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:  # noqa: D102
        training = self.trainer is not None and self.trainer.training
        return self.transform_batch(batch, train=training)

    def state_dict(self) -> dict[str, Any]:
        """Band order, label order and normalisation: stored with every checkpoint."""
        return {
            "band_order": list(self.band_order),
            "label_names": list(self.label_names),
            "img_size": self.img_size,
            "normalization": self.normalization,
            "interpolation": self.interpolation,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Refuse to resume with a different band or label order than the checkpoint's."""
        for key, mine in (("band_order", list(self.band_order)), ("label_names", list(self.label_names))):
            if key in state_dict and list(state_dict[key]) != mine:
                raise ValueError(f"checkpoint {key} {state_dict[key]} differs from the data module's {mine}")


def default_num_workers() -> int:
    """Half the visible cores (at least 1): a sane default for small machines."""
    return max(1, (os.cpu_count() or 2) // 2)


__all__ = ["BigEarthNetDataModule", "default_num_workers"]
