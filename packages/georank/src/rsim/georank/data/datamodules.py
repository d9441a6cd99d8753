"""SSL data modules with patch coordinates: SSL4EO-S12 and BigEarthNet v2 (wrapping rsim-core's data module).

Workers return raw arrays; ``on_after_batch_transfer`` stacks the bands, centre-crops, normalises (99th
percentile, then standardisation) and draws the SSL views on the batch's device. A transformed training batch is
``{"views": [global views (B, C, S, S)…, local views…], "image": (B, C, S, S), "coords": (B, 2) float64 (lat, lon),
"index": (B,)}`` plus ``"label"`` for BigEarthNet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from lightning.pytorch import LightningDataModule
from rsim.core.data import BigEarthNetDataModule, PatchTable, stack_bands
from rsim.core.data.nomenclature import band_presets
from rsim.core.errors import DataFormatError
from rsim.georank.data.coords import (
    LATLON_COLUMNS,
    benv2_coordinates,
    metadata_coordinates,
    patch_name_coordinates,
    read_coordinates,
    ssl4eo_coordinates,
)
from rsim.georank.data.ssl4eo import SSL4EO_GSD, SSL4EOS12Dataset, SSL4EOS12Tree
from rsim.georank.data.transforms import PercentileStandardize, ViewAugment, center_crop
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

CARDINALITIES: tuple[float, ...] = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01)


def cardinality_subset(n: int, fraction: float, version: int = 0) -> np.ndarray:
    """Sorted indices of a seeded random ``fraction`` of ``n`` samples (``version`` = seed; 1.0 keeps all)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"subset fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0:
        return np.arange(n)
    k = max(1, round(n * fraction))
    return np.sort(np.random.default_rng(version).permutation(n)[:k])


@dataclass
class Views:
    """How SSL views are drawn (defaults: the original's RandomResizedCrop 0.2–1, flips and rot90 at 1/.75/.75).

    Attributes:
        num_global: Global views per sample (0: no views, e.g. for linear probes that read ``image``).
        crop_scale: Area range of the global crops.
        flip_p: Probability of each flip.
        rot90_p: Probability of a 90° rotation.
        extra: Study-set augmentations (names of ``rsim.georank.data.transforms.AUGMENTATIONS``).
        extra_p: Probability of each extra augmentation.
        num_local: Local (DINO) views per sample.
        local_size: Size of the local views.
        local_scale: Area range of the local crops.
    """

    num_global: int = 2
    crop_scale: tuple[float, float] = (0.2, 1.0)
    flip_p: float = 0.75
    rot90_p: float = 0.75
    extra: list[str] = field(default_factory=list)
    extra_p: float = 0.5
    num_local: int = 0
    local_size: int = 60
    local_scale: tuple[float, float] = (0.08, 0.25)


class _ViewMaker(torch.nn.Module):
    def __init__(self, size: int, views: Views) -> None:
        super().__init__()
        if views.num_global < 0 or views.num_local < 0:
            raise ValueError("views.num_global and views.num_local must be >= 0 (0 global views: no views)")
        self.views = views
        kwargs = {"flip_p": views.flip_p, "rot90_p": views.rot90_p, "extra": views.extra, "extra_p": views.extra_p}
        self.global_aug = ViewAugment(size, crop_scale=tuple(views.crop_scale), **kwargs)  # type: ignore[arg-type]
        self.local_aug = ViewAugment(views.local_size, crop_scale=tuple(views.local_scale), **kwargs)  # type: ignore[arg-type]

    def forward(self, image: Tensor, image_t2: Tensor | None = None) -> list[Tensor]:
        sources = [image, image if image_t2 is None else image_t2]
        out = [self.global_aug(sources[min(i, 1)]) for i in range(self.views.num_global)]
        out += [self.local_aug(image) for _ in range(self.views.num_local)]
        return out


def _normalizer(
    bands: Sequence[str], p99: dict[str, float] | None, mean: list[float] | None, std: list[float] | None
) -> PercentileStandardize:
    return PercentileStandardize.for_bands(bands, p99, mean, std)


class SSL4EODataModule(LightningDataModule):
    """SSL4EO-S12 pretraining data with WGS84 patch centres and optional temporal positive pairs.

    Args:
        root: Folder holding ``s2a/`` (or ``modality``).
        modality: ``s2a``, ``s2c`` or ``s1``.
        bands: Preset name or band list (BigEarthNet spelling); channel order of the batch.
        img_size: Centre crop in pixels at 10 m (the original: 120 of 264).
        temporal_views: Positive pair = two acquisitions of the same location.
        subset_fraction: Dataset cardinality (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01).
        subset_version: Seed of the subset.
        p99: Per-band 99th percentiles (default: the BigEarthNet "All" table).
        norm_mean: Per-band mean of ``x / p99`` (``None``: no standardisation).
        norm_std: Per-band std of ``x / p99``.
        views: View settings.
        batch_size: Batch size.
        num_workers: DataLoader workers.
        seed: Seed of the timestamp draws.
        coords_file: Parquet ``patch_id`` (= location), ``lat``, ``lon`` for :meth:`train_coordinates` (GASSL).
    """

    def __init__(
        self,
        root: str,
        modality: str = "s2a",
        bands: str | list[str] = "S2",
        img_size: int = 120,
        temporal_views: bool = False,
        subset_fraction: float = 1.0,
        subset_version: int = 0,
        p99: dict[str, float] | None = None,
        norm_mean: list[float] | None = None,
        norm_std: list[float] | None = None,
        views: Views | None = None,
        batch_size: int = 256,
        num_workers: int = 4,
        seed: int = 0,
        coords_file: str | None = None,
    ) -> None:
        super().__init__()
        self.root = root
        self.coords_file = coords_file
        self.modality = modality
        self.band_order = band_presets(bands)
        self.num_channels = len(self.band_order)
        self.img_size = img_size
        self.temporal_views = temporal_views
        self.subset_fraction = subset_fraction
        self.subset_version = subset_version
        self.normalize = _normalizer(self.band_order, p99, norm_mean, norm_std)
        self.view_maker = _ViewMaker(img_size, views or Views())
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.dataset: SSL4EOS12Dataset | None = None

    def setup(self, stage: str | None = None) -> None:  # noqa: D102
        if self.dataset is None:
            tree = SSL4EOS12Tree(self.root, self.modality)
            idx = cardinality_subset(len(tree.locations), self.subset_fraction, self.subset_version)
            self.dataset = SSL4EOS12Dataset(
                tree, self.band_order, temporal_views=self.temporal_views, indices=idx.tolist(), seed=self.seed
            )

    def train_coordinates(self) -> np.ndarray:
        """``(N, 2)`` (lat, lon) of every training location, in dataset-index order (for GASSL's clusters).

        Read from ``coords_file`` (``georank coords --layout ssl4eo``, Dask) when given, else from each location's
        first-timestamp GeoTIFF bounds (serially).
        """
        self.setup()
        assert self.dataset is not None
        tree, ds = self.dataset.tree, self.dataset
        locations = [tree.locations[i] for i in ds.indices]
        if self.coords_file is not None:
            return read_coordinates(self.coords_file, locations)
        ref = next((b for b in self.band_order if SSL4EO_GSD[b] == 10), self.band_order[0])
        return ssl4eo_coordinates(self.root, locations, modality=self.modality, band=ref)

    def train_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        self.setup()
        assert self.dataset is not None
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=len(self.dataset) > self.batch_size,
        )

    def predict_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        self.setup()
        assert self.dataset is not None
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers)

    def _image(self, bands: dict[str, Tensor]) -> Tensor:
        ten_m = [b for b in self.band_order if SSL4EO_GSD[b] == 10]
        native = int(bands[ten_m[0]].shape[-1]) if ten_m else int(bands[self.band_order[0]].shape[-1])
        image = stack_bands(bands, self.band_order, native)
        if native < self.img_size:
            raise ValueError(f"SSL4EO-S12 patches are {native} px, smaller than img_size={self.img_size}")
        return self.normalize(center_crop(image, self.img_size))

    def transform_batch(self, batch: dict[str, Any], *, train: bool) -> dict[str, Any]:
        """Stack, centre-crop, normalise and (with ``train``) draw the views of a batch on its device."""
        image = self._image(batch["bands"])
        out: dict[str, Any] = {"image": image, "coords": batch["coords"], "index": batch["index"]}
        if train and self.view_maker.views.num_global > 0:
            image_t2 = self._image(batch["bands_t2"]) if "bands_t2" in batch else None
            out["views"] = self.view_maker(image, image_t2)
        return out

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:  # noqa: D102
        training = self.trainer is not None and self.trainer.training
        return self.transform_batch(batch, train=training)


class _WithCoords(Dataset[dict[str, Any]]):
    """Adds ``"coords"`` (lat, lon) from a per-index array to the samples of a dataset."""

    def __init__(self, dataset: Any, coords: np.ndarray) -> None:
        self.dataset = dataset
        self.coords = coords
        self.table = dataset.table

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.dataset[index])
        sample["coords"] = self.coords[index]
        return sample


class BigEarthNetGeoDataModule(BigEarthNetDataModule):
    """rsim-core's BigEarthNet data module plus patch centres, cardinality subsets, GeoRank normalisation and views.

    Pretraining reads the GeoTIFF tree (``root``) or rsim-core's LMDB store (``lmdb``, rico-hdl format, with the
    ``metadata`` parquet). Patch centres come from ``coords_source``:

    - ``file``: ``coords_file``, a parquet of ``patch_id, lat, lon`` (written by ``georank coords``);
    - ``metadata``: ``latitude``/``longitude`` (or ``lat``/``lon``) columns of the metadata parquet (e.g. the
      BigEarthNet.txt parquet's patch centres);
    - ``geotiff``: each patch's ``B02`` bounds in the tree under ``root`` → WGS84;
    - ``patch_name``: the patch-name geometry ``<tile>_<c>_<r>`` + the MGRS tile origin (no file read; works for
      an LMDB store alone);
    - ``auto`` (default): the first of file, metadata, geotiff (GeoTIFF tree without LMDB), patch_name available.

    All other arguments are those of :class:`rsim.core.data.BigEarthNetDataModule` (its own normalisation and
    augmentation are replaced).

    Args:
        coords_file: Parquet of ``patch_id, lat, lon``.
        coords_source: ``auto``, ``file``, ``metadata``, ``geotiff`` or ``patch_name``.
        subset_fraction: Cardinality of the training split.
        subset_version: Seed of the subset.
        p99: Per-band 99th percentiles (default: the BigEarthNet "All" table).
        norm_mean: Per-band mean of ``x / p99`` (``None``: no standardisation).
        norm_std: Per-band std of ``x / p99``.
        views: View settings.
        **kwargs: Arguments of ``BigEarthNetDataModule``.
    """

    def __init__(
        self,
        coords_file: str | None = None,
        coords_source: Literal["auto", "file", "metadata", "geotiff", "patch_name"] = "auto",
        subset_fraction: float = 1.0,
        subset_version: int = 0,
        p99: dict[str, float] | None = None,
        norm_mean: list[float] | None = None,
        norm_std: list[float] | None = None,
        views: Views | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.update(normalization=None, augment=False)
        super().__init__(**kwargs)
        self.coords_file = coords_file
        if coords_source not in ("auto", "file", "metadata", "geotiff", "patch_name"):
            raise ValueError(f"unknown coords_source {coords_source!r}; expected auto, file, metadata, geotiff, "
                             "patch_name")  # fmt: skip
        self.coords_source = coords_source
        self._latlon_frame: pd.DataFrame | bool | None = None
        self.subset_fraction = subset_fraction
        self.subset_version = subset_version
        self.georank_normalize = _normalizer(self.band_order, p99, norm_mean, norm_std)
        self.view_maker = _ViewMaker(self.img_size, views or Views())
        cardinality_subset(1, subset_fraction)  # validate early

    def build_table(self, split: str) -> PatchTable:  # noqa: D102
        table = super().build_table(split)
        if split == "train" and self.subset_fraction < 1.0:
            mask = np.zeros(len(table), dtype=bool)
            mask[cardinality_subset(len(table), self.subset_fraction, self.subset_version)] = True
            table = table.subset(mask)
        return table

    def patch_coordinates(self, table: PatchTable) -> np.ndarray:
        """``(N, 2)`` (lat, lon) of the table's patches, from ``coords_source`` (see the class docstring)."""
        keys = [str(k) for k in table.s2_keys]
        source = self.coords_source
        if source == "auto":
            if self.coords_file is not None:
                source = "file"
            elif self._metadata_latlon() is not None:
                source = "metadata"
            elif self.lmdb is None and self.root is not None:
                source = "geotiff"
            else:
                source = "patch_name"
        if source == "file":
            if self.coords_file is None:
                raise FileNotFoundError("coords_source='file' needs `coords_file` (written by `georank coords`)")
            return read_coordinates(self.coords_file, keys)
        if source == "metadata":
            frame = self._metadata_latlon()
            if frame is None:
                raise DataFormatError(
                    f"coords_source='metadata': {self._metadata_file()} has no latitude/longitude (or lat/lon) columns"
                )
            return metadata_coordinates(frame, keys, source=str(self._metadata_file()))
        if source == "geotiff":
            if self.root is None:
                raise FileNotFoundError("coords_source='geotiff' needs the GeoTIFF tree `root`")
            return benv2_coordinates(self.root, keys)
        if source == "patch_name":
            return patch_name_coordinates(keys)
        raise ValueError(f"unknown coords_source {source!r}; expected auto, file, metadata, geotiff or patch_name")

    def _metadata_latlon(self) -> pd.DataFrame | None:
        """The metadata parquet when it carries patch-centre coordinates, else ``None`` (read once)."""
        if self._latlon_frame is None:
            try:
                path = self._metadata_file()
            except FileNotFoundError:
                return None
            frame = pd.read_parquet(path)
            cols = {c for pair in LATLON_COLUMNS for c in pair} & set(frame.columns)
            self._latlon_frame = frame[["patch_id", *sorted(cols)]] if cols and "patch_id" in frame.columns else False
        return self._latlon_frame if isinstance(self._latlon_frame, pd.DataFrame) else None

    def train_coordinates(self) -> np.ndarray:
        """``(N, 2)`` (lat, lon) of every training patch, in dataset-index order (for GASSL's clusters)."""
        return np.asarray(self._ensure("train").coords, dtype=np.float64)

    def _ensure(self, split: str) -> Any:
        dataset = super()._ensure(split)
        if isinstance(dataset, _WithCoords):
            return dataset
        wrapped = _WithCoords(dataset, self.patch_coordinates(dataset.table))
        self.datasets[split] = wrapped  # type: ignore[assignment]
        return wrapped

    def transform_batch(self, batch: dict[str, Any], *, train: bool) -> dict[str, Any]:  # noqa: D102
        image = stack_bands(batch["bands"], self.band_order, self.img_size, self.interpolation)
        image = self.georank_normalize(image)
        out: dict[str, Any] = {
            "image": image,
            "label": batch["label"].float(),
            "coords": batch["coords"],
            "index": batch["index"],
        }
        if train and self.view_maker.views.num_global > 0:
            out["views"] = self.view_maker(image)
        return out


__all__ = ["CARDINALITIES", "BigEarthNetGeoDataModule", "SSL4EODataModule", "Views", "cardinality_subset"]
