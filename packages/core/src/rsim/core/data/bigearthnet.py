"""Readers of the official BigEarthNet layouts (v2.0/reBEN archive tree and v1.0 flat folders) and the dataset.

Readers return raw arrays exactly as rasterio reads them (native resolution and dtype, no scaling); resampling,
normalisation and augmentation happen on the batch's device (see :mod:`rsim.core.data.transforms`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import rasterio
from rasterio.errors import RasterioError
from rsim.core.data.nomenclature import (
    BAND_GSD,
    S1_BANDS,
    LabelOrder,
    label_names,
    native_size,
    v1_labels_to_19,
)
from rsim.core.errors import DataFormatError, MissingKeyError
from torch.utils.data import Dataset

Split = Literal["train", "validation", "test"]
SPLITS: tuple[str, ...] = ("train", "validation", "test")
METADATA_COLUMNS = ("patch_id", "labels", "split", "s1_name")
_OPTIONAL_COLUMNS = ("contains_seasonal_snow", "contains_cloud_or_shadow")
_GDAL_ENV = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_NUM_THREADS": "1",
    "CPL_VSIL_CURL_USE_HEAD": "NO",
}


def expected_dtype(band: str) -> str:
    """BigEarthNet stores S1 backscatter as float32 dB and S2 reflectance ×10000 as uint16."""
    return "float32" if band in S1_BANDS else "uint16"


def read_band_file(path: Path, *, patch: str, band: str, check_dtype: bool = True) -> np.ndarray:
    """Read a single-band BigEarthNet GeoTIFF and check band count, dtype and size.

    Raises:
        FileNotFoundError: The file is missing.
        DataFormatError: The file is unreadable (corrupt or truncated) or has the wrong bands/dtype/size.
    """
    if not path.is_file():
        raise FileNotFoundError(f"patch {patch}: band {band} file {path} is missing")
    try:
        with rasterio.open(path) as src:
            if src.count != 1:
                raise DataFormatError(f"patch {patch}: {path} has {src.count} bands, expected 1 ({band})")
            dtype = src.dtypes[0]
            want = expected_dtype(band)
            if check_dtype and dtype != want:
                raise DataFormatError(f"patch {patch}: {path} has dtype {dtype}, expected {want} for band {band}")
            array = src.read(1)
    except RasterioError as exc:
        raise DataFormatError(
            f"patch {patch}: cannot read {path} ({exc}); expected a readable single-band GeoTIFF"
        ) from exc
    size = native_size(band)
    if array.shape != (size, size):
        raise DataFormatError(
            f"patch {patch}: {path} is {array.shape[0]}×{array.shape[1]} px, expected {size}×{size} "
            f"for band {band} at {BAND_GSD[band]} m"
        )
    return array


class PatchReader(Protocol):
    """What the dataset needs from a source: S2 bands, S1 bands and reference maps by name."""

    def read_s2(self, patch_id: str, bands: Sequence[str]) -> dict[str, np.ndarray]: ...  # noqa: D102

    def read_s1(self, s1_name: str, bands: Sequence[str]) -> dict[str, np.ndarray]: ...  # noqa: D102

    def read_reference_map(self, patch_id: str) -> np.ndarray: ...  # noqa: D102


def s2_product(patch_id: str) -> str:
    """S2 product folder of a patch: the patch id without its ``_<col>_<row>`` suffix."""
    return patch_id.rsplit("_", 2)[0]


def s1_product(s1_name: str) -> str:
    """S1 product folder of a patch: the S1 name without its ``_<tile>_<col>_<row>`` suffix."""
    return s1_name.rsplit("_", 3)[0]


class BigEarthNetV2Tree:
    """The official v2 (reBEN) archive tree: ``BigEarthNet-S1/``, ``BigEarthNet-S2/``, ``Reference_Maps/``.

    Args:
        root: Folder holding the extracted archives (any of the three may be absent).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"BigEarthNet v2 root {self.root} does not exist")

    def s2_dir(self, patch_id: str) -> Path:
        """Folder of an S2 patch."""
        return self.root / "BigEarthNet-S2" / s2_product(patch_id) / patch_id

    def s1_dir(self, s1_name: str) -> Path:
        """Folder of an S1 patch."""
        return self.root / "BigEarthNet-S1" / s1_product(s1_name) / s1_name

    def reference_map_file(self, patch_id: str) -> Path:
        """Reference map GeoTIFF of a patch."""
        return self.root / "Reference_Maps" / s2_product(patch_id) / patch_id / f"{patch_id}_reference_map.tif"

    def band_file(self, name: str, band: str) -> Path:
        """GeoTIFF of one band: ``name`` is the S2 patch id for S2 bands and the S1 name for S1 bands."""
        folder = self.s1_dir(name) if band in S1_BANDS else self.s2_dir(name)
        return folder / f"{name}_{band}.tif"

    def _read(self, name: str, bands: Sequence[str], modality: str) -> dict[str, np.ndarray]:
        folder = self.s1_dir(name) if modality == "S1" else self.s2_dir(name)
        if not folder.is_dir():
            raise FileNotFoundError(f"patch {name}: {modality} folder {folder} is missing")
        with rasterio.Env(**_GDAL_ENV):
            return {b: read_band_file(folder / f"{name}_{b}.tif", patch=name, band=b) for b in bands}

    def read_s2(self, patch_id: str, bands: Sequence[str]) -> dict[str, np.ndarray]:
        """Read S2 bands of a patch as uint16 arrays at native resolution."""
        return self._read(patch_id, bands, "S2")

    def read_s1(self, s1_name: str, bands: Sequence[str]) -> dict[str, np.ndarray]:
        """Read S1 bands (float32 dB, 120×120) of an S1 patch."""
        return self._read(s1_name, bands, "S1")

    def read_reference_map(self, patch_id: str) -> np.ndarray:
        """Read the CLC Level-3 reference map (uint16, 120×120, nodata 0)."""
        path = self.reference_map_file(patch_id)
        if not path.is_file():
            raise FileNotFoundError(f"patch {patch_id}: reference map {path} is missing")
        try:
            with rasterio.Env(**_GDAL_ENV), rasterio.open(path) as src:
                if src.count != 1 or src.dtypes[0] != "uint16":
                    raise DataFormatError(
                        f"patch {patch_id}: {path} has {src.count} band(s) of {src.dtypes[0]}, expected 1 uint16"
                    )
                array = src.read(1)
        except RasterioError as exc:
            raise DataFormatError(f"patch {patch_id}: cannot read reference map {path} ({exc})") from exc
        if array.shape != (120, 120):
            raise DataFormatError(f"patch {patch_id}: reference map {path} is {array.shape}, expected (120, 120)")
        return array

    def available_s2(self) -> set[str]:
        """Patch ids whose S2 folder exists (a directory scan; cheap compared with opening files)."""
        return _scan_two_levels(self.root / "BigEarthNet-S2")

    def available_s1(self) -> set[str]:
        """S1 names whose folder exists."""
        return _scan_two_levels(self.root / "BigEarthNet-S1")

    def available_reference_maps(self) -> set[str]:
        """Patch ids with a reference-map folder."""
        return _scan_two_levels(self.root / "Reference_Maps")


def _scan_two_levels(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    names: set[str] = set()
    with os.scandir(folder) as products:
        for product in products:
            if product.is_dir():
                with os.scandir(product.path) as patches:
                    names.update(p.name for p in patches if p.is_dir())
    return names


class BigEarthNetV1Tree:
    """The v1.0 flat layout: one folder per patch holding ``<name>_<band>.tif`` and ``<name>_labels_metadata.json``.

    Args:
        s2_dir: Folder of S2 patch folders (``BigEarthNet-v1.0`` or ``BigEarthNet-S2-Example``).
        s1_dir: Folder of S1 patch folders (``BigEarthNet-S1-v1.0`` or ``BigEarthNet-S1-Example``), optional.
    """

    def __init__(self, s2_dir: str | os.PathLike[str], s1_dir: str | os.PathLike[str] | None = None) -> None:
        self.s2_dir = Path(s2_dir)
        self.s1_dir = Path(s1_dir) if s1_dir is not None else None
        if not self.s2_dir.is_dir():
            raise FileNotFoundError(f"BigEarthNet v1 S2 folder {self.s2_dir} does not exist")
        if self.s1_dir is not None and not self.s1_dir.is_dir():
            raise FileNotFoundError(f"BigEarthNet v1 S1 folder {self.s1_dir} does not exist")

    @classmethod
    def from_root(cls, root: str | os.PathLike[str]) -> BigEarthNetV1Tree:
        """Find the S2 and S1 folders under ``root`` by their official or example names."""
        root = Path(root)
        s2 = next((root / n for n in ("BigEarthNet-v1.0", "BigEarthNet-S2-Example") if (root / n).is_dir()), None)
        s1 = next((root / n for n in ("BigEarthNet-S1-v1.0", "BigEarthNet-S1-Example") if (root / n).is_dir()), None)
        if s2 is None:
            raise FileNotFoundError(
                f"{root} holds no BigEarthNet v1 S2 folder (expected BigEarthNet-v1.0/ or BigEarthNet-S2-Example/)"
            )
        return cls(s2, s1)

    def patch_names(self) -> list[str]:
        """Sorted names of the S2 patch folders."""
        return sorted(p.name for p in self.s2_dir.iterdir() if p.is_dir())

    def labels_json(self, name: str, modality: str = "S2") -> dict[str, Any]:
        """Parse a patch's ``*_labels_metadata.json``.

        Raises:
            FileNotFoundError: The file is missing.
            DataFormatError: It is not JSON or has no ``labels`` list.
        """
        folder = self._folder(name, modality)
        path = folder / f"{name}_labels_metadata.json"
        if not path.is_file():
            raise FileNotFoundError(f"patch {name}: label file {path} is missing")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"patch {name}: {path} is not valid JSON ({exc})") from exc
        if not isinstance(data.get("labels"), list):
            raise DataFormatError(f"patch {name}: {path} has no 'labels' list")
        return data

    def labels_19(self, name: str) -> list[str]:
        """The patch's v1 labels mapped to the 19-class nomenclature by CLC name."""
        path = self._folder(name, "S2") / f"{name}_labels_metadata.json"
        return v1_labels_to_19(self.labels_json(name)["labels"], source=str(path))

    def s1_partner_index(self) -> dict[str, str]:
        """Map v1 S2 name → S1 name, from the S1 JSONs' ``corresponding_s2_patch``."""
        if self.s1_dir is None:
            return {}
        index: dict[str, str] = {}
        for folder in self.s1_dir.iterdir():
            if folder.is_dir():
                index[self.labels_json(folder.name, "S1")["corresponding_s2_patch"]] = folder.name
        return index

    def _folder(self, name: str, modality: str) -> Path:
        if modality == "S1":
            if self.s1_dir is None:
                raise FileNotFoundError(f"patch {name}: S1 bands requested but no v1 S1 folder was given")
            return self.s1_dir / name
        return self.s2_dir / name

    def _read(self, name: str, bands: Sequence[str], modality: str) -> dict[str, np.ndarray]:
        folder = self._folder(name, modality)
        if not folder.is_dir():
            raise FileNotFoundError(f"patch {name}: {modality} folder {folder} is missing")
        with rasterio.Env(**_GDAL_ENV):
            return {b: read_band_file(folder / f"{name}_{b}.tif", patch=name, band=b) for b in bands}

    def read_s2(self, patch_id: str, bands: Sequence[str]) -> dict[str, np.ndarray]:
        """Read S2 bands of a v1 patch (v1 files set no nodata)."""
        return self._read(patch_id, bands, "S2")

    def read_s1(self, s1_name: str, bands: Sequence[str]) -> dict[str, np.ndarray]:
        """Read S1 bands of a v1 patch."""
        return self._read(s1_name, bands, "S1")

    def read_reference_map(self, patch_id: str) -> np.ndarray:
        """v1 has no reference maps."""
        raise FileNotFoundError(f"patch {patch_id}: BigEarthNet v1 ships no reference maps")


def find_metadata(root: str | os.PathLike[str]) -> Path:
    """Locate ``metadata.parquet`` in ``root`` or ``root/metadata``."""
    root = Path(root)
    for candidate in (root / "metadata.parquet", root / "metadata" / "metadata.parquet"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no metadata.parquet in {root} or {root / 'metadata'}; pass the metadata path explicitly")


def load_metadata(
    path: str | os.PathLike[str],
    *,
    snow_cloud_path: str | os.PathLike[str] | None = None,
    filter_snow_cloud: bool = True,
    patch_ids: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read the v2 ``metadata.parquet`` (and optionally the snow/cloud/shadow file).

    Args:
        path: ``metadata.parquet``.
        snow_cloud_path: ``metadata_for_patches_with_snow_cloud_or_shadow.parquet``; its rows are added only
            when ``filter_snow_cloud`` is off.
        filter_snow_cloud: Drop patches flagged with seasonal snow or cloud/shadow (reBEN's default).
        patch_ids: Read only these patches (a filtered parquet read: fast on the 480k-row table).
        columns: Return only these columns (all by default).

    Raises:
        FileNotFoundError: A file is missing.
        DataFormatError: The file is not parquet or lacks a required column.
    """
    flags = ("contains_seasonal_snow", "contains_cloud_or_shadow")
    read_columns = None
    if columns is not None:
        read_columns = list(dict.fromkeys([*columns, *(flags if filter_snow_cloud else ())]))
    frames = [_read_parquet(Path(path), read_columns, patch_ids)]
    if snow_cloud_path is not None and not filter_snow_cloud:
        frames.append(_read_parquet(Path(snow_cloud_path), read_columns, patch_ids))
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if filter_snow_cloud:
        present = [c for c in flags if c in df.columns]
        if present:
            df = df.loc[~df[present].any(axis=1)].reset_index(drop=True)
    return df[list(columns)] if columns is not None else df


def _read_parquet(
    path: Path, columns: Sequence[str] | None = None, patch_ids: Sequence[str] | None = None
) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"metadata file {path} is missing")
    try:
        import pyarrow.parquet as pq

        available = set(pq.read_schema(path).names)
        wanted = None if columns is None else [c for c in columns if c in available]
        filters = None if patch_ids is None else [("patch_id", "in", list(patch_ids))]
        df = pd.read_parquet(path, columns=wanted, filters=filters)
    except Exception as exc:  # pyarrow raises ArrowInvalid and friends
        raise DataFormatError(f"{path} is not a readable parquet file ({exc})") from exc
    required = METADATA_COLUMNS if columns is None else [c for c in columns if c not in _OPTIONAL_COLUMNS]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataFormatError(f"{path} lacks column(s) {missing}; expected the BigEarthNet v2 metadata schema")
    return df


@dataclass
class PatchTable:
    """The patches of one split: keys into the reader and the 19-class multi-hot labels.

    Attributes:
        s2_keys: S2 patch id (v2) or S2 folder name (v1) per patch.
        s1_keys: S1 name per patch (``None`` where unknown).
        labels: ``(N, 19)`` float32 multi-hot, columns in ``label_order``.
        label_order: Label order of the columns.
    """

    s2_keys: np.ndarray
    s1_keys: np.ndarray
    labels: np.ndarray
    label_order: LabelOrder = "clc"

    def __len__(self) -> int:
        return len(self.s2_keys)

    @classmethod
    def from_metadata(
        cls,
        metadata: pd.DataFrame,
        split: str | None = None,
        *,
        label_order: LabelOrder = "clc",
        source: str = "metadata.parquet",
    ) -> PatchTable:
        """Build the table of one split (``None`` = all rows) from v2 metadata; labels map by class name.

        Raises:
            KeyError: A label is not one of the 19 class names.
        """
        if split is not None:
            if split not in SPLITS:
                raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
            metadata = metadata.loc[metadata["split"] == split]
        names = label_names(label_order)
        exploded = metadata["labels"].explode()
        codes = pd.Categorical(exploded, categories=names)
        if (codes.codes < 0).any():
            bad = sorted(set(exploded[codes.codes < 0].astype(str)))
            raise MissingKeyError(f"{source}: labels {bad} are not BigEarthNet 19-class names")
        rows = np.repeat(np.arange(len(metadata)), metadata["labels"].map(len).to_numpy(dtype=np.int64))
        multi_hot = np.zeros((len(metadata), len(names)), dtype=np.float32)
        multi_hot[rows, codes.codes] = 1.0
        return cls(
            s2_keys=metadata["patch_id"].to_numpy(dtype=str),
            s1_keys=metadata["s1_name"].to_numpy(dtype=str),
            labels=multi_hot,
            label_order=label_order,
        )

    def position(self, patch_id: str, *, source: str = "metadata") -> int:
        """Row of ``patch_id``.

        Raises:
            MissingKeyError: The patch is not in the table (wrong split, filtered, or absent from the metadata).
        """
        hits = np.flatnonzero(self.s2_keys == patch_id)
        if len(hits) == 0:
            raise MissingKeyError(f"patch {patch_id} is absent from {source} (after split selection and filters)")
        return int(hits[0])

    def subset(self, mask: np.ndarray) -> PatchTable:
        """Rows where ``mask`` is true."""
        return PatchTable(self.s2_keys[mask], self.s1_keys[mask], self.labels[mask], self.label_order)


def v1_patch_table(
    tree: BigEarthNetV1Tree,
    *,
    split: str | None = None,
    metadata: pd.DataFrame | None = None,
    split_csv: str | os.PathLike[str] | None = None,
    label_order: LabelOrder = "clc",
) -> PatchTable:
    """Build a table for v1 patches; labels come from the v1 JSONs (43 → 19 by CLC name).

    The split comes from a v1 split CSV (first column = S2 name) when ``split_csv`` is given, otherwise from the v2
    metadata joined through ``s2v1_name`` (v1 patches absent from the filtered metadata are dropped, which also
    applies the snow/cloud exclusion).
    """
    from rsim.core.data.nomenclature import multi_hot

    names = tree.patch_names()
    if split_csv is not None:
        path = Path(split_csv)
        if not path.is_file():
            raise FileNotFoundError(f"v1 split file {path} is missing")
        wanted = set(pd.read_csv(path, header=None).iloc[:, 0].astype(str))
        names = [n for n in names if n in wanted]
    elif metadata is not None:
        if "s2v1_name" not in metadata.columns:
            raise DataFormatError("metadata lacks column 's2v1_name' needed to map v1 names to v2 splits")
        rows = metadata.set_index("s2v1_name")
        keep = [n for n in names if n in rows.index and (split is None or rows.loc[n, "split"] == split)]
        names = keep
    elif split is not None:
        raise ValueError("a v1 split needs either split_csv or the v2 metadata (joined through s2v1_name)")
    partners = tree.s1_partner_index()
    labels = (
        np.stack([multi_hot(tree.labels_19(n), label_order) for n in names])
        if names
        else np.zeros((0, 19), dtype=np.float32)
    )
    return PatchTable(
        s2_keys=np.asarray(names, dtype=str),
        s1_keys=np.asarray([partners.get(n, "") for n in names], dtype=str),
        labels=labels,
        label_order=label_order,
    )


class BigEarthNetDataset(Dataset[dict[str, Any]]):
    """Samples of raw band arrays and multi-hot labels.

    A sample is ``{"bands": {band: array at native size and dtype}, "label": (19,) float32, "index": int}`` and,
    with ``reference_maps``, ``"reference_map"``: the uint16 CLC map.

    Args:
        reader: A :class:`BigEarthNetV2Tree`, :class:`BigEarthNetV1Tree` or
            :class:`~rsim.core.data.lmdb_store.LmdbPatchStore`.
        table: The patches and labels.
        bands: Band names to read (S1 and S2 names may be mixed).
        reference_maps: Also return the reference map.
    """

    def __init__(
        self, reader: PatchReader, table: PatchTable, bands: Sequence[str], *, reference_maps: bool = False
    ) -> None:
        self.reader = reader
        self.table = table
        self.s1_bands = [b for b in bands if b in S1_BANDS]
        self.s2_bands = [b for b in bands if b not in S1_BANDS]
        self.reference_maps = reference_maps

    def __len__(self) -> int:
        return len(self.table)

    def sample(self, patch_id: str) -> dict[str, Any]:
        """The sample of a patch given by its id (raises ``MissingKeyError`` if it is not in the table)."""
        return self[self.table.position(patch_id)]

    def __getitem__(self, index: int) -> dict[str, Any]:
        patch_id = str(self.table.s2_keys[index])
        bands: dict[str, np.ndarray] = {}
        if self.s2_bands:
            bands.update(self.reader.read_s2(patch_id, self.s2_bands))
        if self.s1_bands:
            s1_name = str(self.table.s1_keys[index])
            if not s1_name:
                raise MissingKeyError(f"patch {patch_id}: no S1 partner is known (s1_name is empty)")
            try:
                bands.update(self.reader.read_s1(s1_name, self.s1_bands))
            except (FileNotFoundError, KeyError) as exc:
                raise type(exc)(f"patch {patch_id}: its S1 partner {s1_name} is absent: {exc}") from exc
        sample: dict[str, Any] = {"bands": bands, "label": self.table.labels[index], "index": index}
        if self.reference_maps:
            sample["reference_map"] = self.reader.read_reference_map(patch_id)
        return sample


def available_mask(table: PatchTable, present: Mapping[str, set[str]], bands: Sequence[str]) -> np.ndarray:
    """Rows whose S2 (and, if S1 bands are requested, S1) patch is present on disk or in the store."""
    mask = np.ones(len(table), dtype=bool)
    if any(b not in S1_BANDS for b in bands):
        mask &= np.isin(table.s2_keys, list(present.get("S2", set())))
    if any(b in S1_BANDS for b in bands):
        mask &= np.isin(table.s1_keys, list(present.get("S1", set())))
    return mask
