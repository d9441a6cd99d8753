r"""Readers of the public multi-label releases of UCMerced, AID and DeepGlobe (images + label table).

Formats assumed (see the package README, "Data formats"):

* **UCMerced multi-label** (Chaudhuri et al., TGRS 2018; labels from bigearth.eu ``multilabels.zip``): the UC Merced
  Land Use images ``UCMerced_LandUse/Images/<scene>/<scene>NN.tif`` (RGB, 256 × 256; a few are slightly smaller)
  and ``LandUse_Multilabeled.txt``: whitespace-separated, header ``IMAGE\\LABEL`` + 17 class names, one row per
  image ``<image name> 0 1 …``.
* **AID multi-label** (Hua et al., ISPRS 2020; github Hua-YS/AID-Multilabel-Dataset): ``images/<scene>/<name>.jpg``
  (RGB, 600 × 600) and ``multilabel.csv``: comma-separated, header ``IMAGE\\LABEL`` + the same 17 class names.
* **DeepGlobe multi-label**: the DeepGlobe Land Cover release ``train/<id>_sat.jpg`` + ``train/<id>_mask.png``
  (2448 × 2448, colour-coded, binarised at 128), cut into non-overlapping ``patch_size`` patches whose multi-hot
  label lists the 6 classes present (Unknown ignored). The label table ``labels.csv``
  (``image_id,row,col,<6 classes>``) is written once by ``nar deepglobe-labels`` (Dask) and read by the module.

Images are found by file stem anywhere under the image folder, so the scene sub-folders may be flattened.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from rsim.core.errors import DataFormatError, MissingKeyError
from rsim.core.io import atomic_path
from rsim.nar.data.images import ImageTable, MultiLabelImageDataModule

__all__ = [
    "AID_ML_CLASSES",
    "DEEPGLOBE_CLASSES",
    "DEEPGLOBE_COLORS",
    "UCM_ML_CLASSES",
    "AIDMultiLabelDataModule",
    "DeepGlobeMultiLabelDataModule",
    "UCMercedMultiLabelDataModule",
    "deepglobe_patch_labels",
    "read_label_table",
    "read_rgb",
    "write_deepglobe_labels",
]

UCM_ML_CLASSES = (
    "airplane",
    "bare-soil",
    "buildings",
    "cars",
    "chaparral",
    "court",
    "dock",
    "field",
    "grass",
    "mobile-home",
    "pavement",
    "sand",
    "sea",
    "ship",
    "tanks",
    "trees",
    "water",
)
AID_ML_CLASSES = UCM_ML_CLASSES
DEEPGLOBE_CLASSES = ("urban_land", "agriculture_land", "rangeland", "forest_land", "water", "barren_land")
DEEPGLOBE_COLORS = ((0, 1, 1), (1, 1, 0), (1, 0, 1), (0, 1, 0), (0, 0, 1), (1, 1, 1))  # binarised RGB; (0,0,0) unknown
IMAGE_SUFFIXES = (".tif", ".tiff", ".jpg", ".jpeg", ".png")


def read_rgb(path: str | os.PathLike[str], size: int | None = None) -> np.ndarray:
    """Read an RGB image as a ``(3, H, W)`` uint8 array.

    With ``size``, a smaller image is edge-padded and a larger one cropped to ``size × size`` (no resampling;
    UC Merced has a few 247-255 px images that would otherwise not collate).

    Raises:
        FileNotFoundError: The file is missing.
        DataFormatError: The file is not a readable image.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} is missing")
    try:
        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataFormatError(f"image {path} is not a readable image: {exc}") from exc
    if size is not None:
        h, w = array.shape[:2]
        array = np.pad(array, ((0, max(0, size - h)), (0, max(0, size - w)), (0, 0)), mode="edge")[:size, :size]
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def read_label_table(path: str | os.PathLike[str], classes: Sequence[str], *, sep: str | None) -> pd.DataFrame:
    """Read a release label table: first column = image name, then one 0/1 column per class (mapped by name).

    Args:
        path: The table (``.txt`` whitespace-separated with ``sep=None``, or ``.csv`` with ``sep=","``).
        classes: Expected class names; the columns are reordered to this order.
        sep: Field separator (``None`` = any whitespace).

    Returns:
        A frame indexed by image name with one uint8 column per class.

    Raises:
        FileNotFoundError: The table is missing.
        DataFormatError: A class column is missing, a value is not 0/1, or all labels are empty.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label table {path} is missing")
    try:
        frame = pd.read_csv(path, sep=r"\s+" if sep is None else sep, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"label table {path} cannot be parsed: {exc}") from exc
    if frame.shape[1] < 2:
        raise DataFormatError(f"label table {path}: expected an image-name column and {len(classes)} class columns")
    frame = frame.set_index(frame.columns[0])
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in classes if c not in frame.columns]
    if missing:
        raise DataFormatError(f"label table {path}: class columns {missing} are missing (found {list(frame.columns)})")
    values = frame[list(classes)].apply(pd.to_numeric, errors="coerce")
    bad = ~values.isin([0, 1])
    if bad.to_numpy().any():
        row = values.index[bad.any(axis=1).to_numpy()][0]
        raise DataFormatError(f"label table {path}: row {row!r} holds a value other than 0/1")
    values = values.astype(np.uint8)
    if int(values.to_numpy().sum()) == 0:
        raise DataFormatError(f"label table {path}: every label is empty")
    return values


def index_images(folder: Path) -> dict[str, Path]:
    """Map file stem → path for every image under ``folder``."""
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} is missing")
    return {p.stem: p for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES}


class _FileReader:
    """Picklable ``read(i)`` over a list of image paths."""

    def __init__(self, paths: Sequence[Path], size: int | None) -> None:
        self.paths = list(paths)
        self.size = size

    def __call__(self, i: int) -> np.ndarray:
        return read_rgb(self.paths[i], self.size)


def _table_from_release(
    labels: pd.DataFrame, images: dict[str, Path], classes: tuple[str, ...], source: str, size: int | None
) -> ImageTable:
    names = [str(n).strip() for n in labels.index]
    paths = []
    for name in names:
        stem = Path(name).stem if Path(name).suffix.lower() in IMAGE_SUFFIXES else name
        if stem not in images:
            raise MissingKeyError(f"{source}: image {name!r} of the label table has no file under the image folder")
        paths.append(images[stem])
    return ImageTable(np.array(names), labels.to_numpy(), classes, _FileReader(paths, size), source)


class UCMercedMultiLabelDataModule(MultiLabelImageDataModule):
    """UCMerced multi-label (17 classes, RGB 256 px).

    Args:
        root: Folder holding ``UCMerced_LandUse/Images`` (or ``Images``) and ``LandUse_Multilabeled.txt``.
        labels_file: The label table (default ``root/LandUse_Multilabeled.txt``).
        **kwargs: Arguments of :class:`~rsim.nar.data.images.MultiLabelImageDataModule`.
    """

    def __init__(self, root: str, labels_file: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        self.labels_file = Path(labels_file) if labels_file else self.root / "LandUse_Multilabeled.txt"

    def load_table(self) -> ImageTable:  # noqa: D102
        labels = read_label_table(self.labels_file, UCM_ML_CLASSES, sep=None)
        folder = self.root / "UCMerced_LandUse" / "Images"
        folder = folder if folder.is_dir() else self.root / "Images"
        return _table_from_release(labels, index_images(folder), UCM_ML_CLASSES, str(self.labels_file), 256)


class AIDMultiLabelDataModule(MultiLabelImageDataModule):
    """AID multi-label (17 classes, RGB 600 px; the original resizes to 256 px: ``img_size: 256``).

    Args:
        root: Folder holding ``images/`` and ``multilabel.csv``.
        labels_file: The label table (default ``root/multilabel.csv``).
        **kwargs: Arguments of :class:`~rsim.nar.data.images.MultiLabelImageDataModule`.
    """

    def __init__(self, root: str, labels_file: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        self.labels_file = Path(labels_file) if labels_file else self.root / "multilabel.csv"

    def load_table(self) -> ImageTable:  # noqa: D102
        labels = read_label_table(self.labels_file, AID_ML_CLASSES, sep=",")
        return _table_from_release(
            labels, index_images(self.root / "images"), AID_ML_CLASSES, str(self.labels_file), None
        )


# -- DeepGlobe ------------------------------------------------------------------------------------------------
def _mask_classes(mask_rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` colour mask → ``(H, W)`` class id (0..5, 6 = unknown), binarised at 128."""
    bits = (mask_rgb >= 128).astype(np.int64)
    code = bits[..., 0] * 4 + bits[..., 1] * 2 + bits[..., 2]
    lut = np.full(8, 6, dtype=np.int64)
    for k, (r, g, b) in enumerate(DEEPGLOBE_COLORS):
        lut[r * 4 + g * 2 + b] = k
    return lut[code]


def deepglobe_patch_labels(mask_path: str | os.PathLike[str], patch_size: int, min_fraction: float) -> pd.DataFrame:
    """Multi-hot labels of the non-overlapping patches of one DeepGlobe mask.

    A class is present in a patch when it covers more than ``min_fraction`` of its pixels; patches without any
    of the 6 classes (all Unknown) are dropped.
    """
    mask_path = Path(mask_path)
    image_id = mask_path.name.removesuffix("_mask.png")
    classes = _mask_classes(read_rgb(mask_path).transpose(1, 2, 0))
    h, w = classes.shape
    rows = []
    for r in range(h // patch_size):
        for c in range(w // patch_size):
            block = classes[r * patch_size : (r + 1) * patch_size, c * patch_size : (c + 1) * patch_size]
            frac = np.bincount(block.ravel(), minlength=7)[:6] / block.size
            hot = (frac > min_fraction).astype(np.uint8)
            if hot.any():
                rows.append(
                    {"image_id": image_id, "row": r, "col": c, **dict(zip(DEEPGLOBE_CLASSES, hot, strict=True))}
                )
    return pd.DataFrame(rows, columns=["image_id", "row", "col", *DEEPGLOBE_CLASSES])


def write_deepglobe_labels(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    patch_size: int = 120,
    min_fraction: float = 0.0,
    scheduler: str | None = None,
    n_workers: int | None = None,
) -> Path:
    """Derive the patch label table of a DeepGlobe Land Cover release with Dask and write it atomically.

    Args:
        root: Release folder holding ``train/<id>_mask.png``.
        out: Output CSV (default ``root/labels_<patch_size>.csv``).
        patch_size: Patch side in pixels.
        min_fraction: Minimum class coverage for a positive label.
        scheduler: Dask scheduler address (default: a local cluster).
        n_workers: Local workers.

    Returns:
        The written path.
    """
    from rsim.core.parallel import dask_client, map_with_progress

    root = Path(root)
    masks = sorted((root / "train").glob("*_mask.png"))
    if not masks:
        raise FileNotFoundError(f"{root / 'train'}: no *_mask.png file (expected the DeepGlobe Land Cover release)")
    out = Path(out) if out is not None else root / f"labels_{patch_size}.csv"
    with dask_client(scheduler, n_workers=n_workers, processes=False) as client:
        frames = map_with_progress(
            lambda p: deepglobe_patch_labels(p, patch_size, min_fraction),
            masks,
            client=client,
            description=f"labelling {len(masks)} DeepGlobe masks",
        )
    table = pd.concat(frames, ignore_index=True)
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    return out


@lru_cache(maxsize=2)
def _read_scene(path: Path) -> np.ndarray:
    return read_rgb(path)


class _PatchReader:
    """Picklable ``read(i)`` that crops patch ``i`` from its DeepGlobe scene (the last 2 scenes are cached)."""

    def __init__(self, paths: Sequence[Path], rows: np.ndarray, cols: np.ndarray, patch_size: int) -> None:
        self.paths, self.rows, self.cols, self.patch_size = list(paths), rows, cols, patch_size

    def __call__(self, i: int) -> np.ndarray:
        scene, s = _read_scene(self.paths[i]), self.patch_size
        r, c = int(self.rows[i]) * s, int(self.cols[i]) * s
        patch = scene[:, r : r + s, c : c + s]
        if patch.shape[1:] != (s, s):
            raise DataFormatError(f"{self.paths[i]}: patch ({self.rows[i]}, {self.cols[i]}) lies outside the image")
        return np.ascontiguousarray(patch)


class DeepGlobeMultiLabelDataModule(MultiLabelImageDataModule):
    """DeepGlobe multi-label (6 classes, RGB patches of the Land Cover release).

    Args:
        root: Release folder holding ``train/<id>_sat.jpg`` and the label table.
        labels_file: Table written by ``nar deepglobe-labels`` (default ``root/labels_<patch_size>.csv``).
        patch_size: Patch side in pixels (must match the table).
        **kwargs: Arguments of :class:`~rsim.nar.data.images.MultiLabelImageDataModule`.
    """

    def __init__(self, root: str, labels_file: str | None = None, patch_size: int = 120, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        self.patch_size = patch_size
        self.labels_file = Path(labels_file) if labels_file else self.root / f"labels_{patch_size}.csv"

    def load_table(self) -> ImageTable:  # noqa: D102
        if not self.labels_file.is_file():
            raise FileNotFoundError(
                f"DeepGlobe label table {self.labels_file} is missing; write it with "
                f"`nar deepglobe-labels {self.root} --patch-size {self.patch_size}`"
            )
        frame = pd.read_csv(self.labels_file, dtype={"image_id": str})
        missing = [c for c in ("image_id", "row", "col", *DEEPGLOBE_CLASSES) if c not in frame.columns]
        if missing:
            raise DataFormatError(f"{self.labels_file}: columns {missing} are missing")
        labels = frame[list(DEEPGLOBE_CLASSES)].to_numpy()
        if not np.isin(labels, (0, 1)).all() or labels.sum() == 0:
            raise DataFormatError(f"{self.labels_file}: labels must be 0/1 with at least one positive")
        paths = [self.root / "train" / f"{i}_sat.jpg" for i in frame["image_id"]]
        for p in dict.fromkeys(paths):
            if not p.is_file():
                raise FileNotFoundError(f"{self.labels_file}: satellite image {p} is missing")
        names = np.array(
            [f"{i}_{r}_{c}" for i, r, c in zip(frame["image_id"], frame["row"], frame["col"], strict=True)]
        )
        reader = _PatchReader(paths, frame["row"].to_numpy(), frame["col"].to_numpy(), self.patch_size)
        return ImageTable(names, labels.astype(np.uint8), DEEPGLOBE_CLASSES, reader, str(self.labels_file))
