"""Reader of the released Sea-Undistort layout: four PNGs per scene, lists, metadata, split and glint mask."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from rsim.core.errors import DataFormatError, MissingKeyError
from torch import Tensor
from torch.utils.data import Dataset

PairMode = Literal["normal_no_waves", "normal_no_sunglint", "no_sunglint_no_waves", "normal_filtered_no_waves"]
Split = Literal["train", "val", "test"]

#: (input suffix, target suffix) per released pair mode. ``normal_filtered_no_waves`` reads the same files as
#: ``normal_no_waves`` in the released loader [code].
PAIR_MODES: dict[str, tuple[str, str]] = {
    "normal_no_waves": ("", "_no_waves"),
    "normal_no_sunglint": ("", "_no_sunglint"),
    "no_sunglint_no_waves": ("_no_sunglint", "_no_waves"),
    "normal_filtered_no_waves": ("", "_no_waves"),
}
VARIANTS = ("", "_no_waves", "_no_sunglint", "_ground")
_ID = re.compile(r"^render_(\d{4})")


def scene_file(folder: str | os.PathLike[str], scene_id: str, variant: str = "") -> Path:
    """Path of one render of a scene: ``render_XXXX{variant}.png``."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown render variant {variant!r}; expected one of {VARIANTS}")
    return Path(folder) / f"render_{scene_id}{variant}.png"


def _chw(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an 8-bit PNG as ``(H, W, 3)`` uint8 RGB.

    Raises:
        FileNotFoundError: ``path`` is missing.
        DataFormatError: Unreadable/truncated file or not 8-bit.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Sea-Undistort render {path} is missing")
    try:
        with Image.open(path) as img:
            if img.mode not in {"RGB", "RGBA", "L", "P"}:
                raise DataFormatError(f"{path}: PNG mode {img.mode!r}, expected 8-bit RGB")
            rgb = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataFormatError(f"cannot read {path} ({exc}); expected an 8-bit RGB PNG") from exc
    return rgb


def _luma(rgb: Tensor) -> Tensor:
    """ITU-R 601-2 luma of ``(B, 3, H, W)`` uint8 RGB as Pillow computes it (integer arithmetic, rounded), int64."""
    weights = torch.tensor([19595, 38470, 7471], dtype=torch.int64, device=rgb.device).view(1, 3, 1, 1)
    return ((rgb.to(torch.int64) * weights).sum(1, keepdim=True) + 0x8000) >> 16


def gray(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma of ``(H, W, 3)`` uint8 RGB exactly as Pillow's ``convert("L")``."""
    return _luma(torch.from_numpy(_chw(rgb))[None])[0, 0].numpy().astype(np.uint8)


def glint_mask_batch(
    distorted: Tensor, no_sunglint: Tensor, lower: float = 30, upper: float = 60, *, binary: bool = False,
    binary_threshold: float = 45,
) -> Tensor:  # fmt: skip
    """Sun-glint masks of a batch of renders and their glint-free twins, on the batch's device.

    ``d = |gray(distorted) - gray(no_sunglint)|`` (uint8 luma as Pillow's ``convert("L")``); the soft mask is
    ``(clip(d, lower, upper) - lower) / (upper - lower)`` quantised to 8 bits as in the released loader [code];
    ``binary`` gives the older ``d > 45``.

    Args:
        distorted: ``(B, 3, H, W)`` uint8 RGB of ``render_XXXX.png``.
        no_sunglint: ``(B, 3, H, W)`` uint8 RGB of ``render_XXXX_no_sunglint.png``.
        lower: Lower clip threshold (``lower_threshold``).
        upper: Upper clip threshold (``upper_threshold``).
        binary: Use the older binary mask.
        binary_threshold: Threshold of the binary mask.

    Returns:
        ``(B, 1, H, W)`` float32 masks in [0, 1].
    """
    if distorted.shape != no_sunglint.shape:
        raise DataFormatError(f"render {tuple(distorted.shape)} and no_sunglint {tuple(no_sunglint.shape)} differ")
    d = (_luma(distorted) - _luma(no_sunglint)).abs()
    if binary:
        return (d > binary_threshold).float()
    norm = (d.float().clamp(lower, upper) - lower) / float(max(upper - lower, 1))
    return (norm * 255).to(torch.uint8).float() / 255.0


def glint_mask(
    distorted: np.ndarray, no_sunglint: np.ndarray, lower: float = 30, upper: float = 60, *, binary: bool = False,
    binary_threshold: float = 45,
) -> np.ndarray:  # fmt: skip
    """:func:`glint_mask_batch` of one ``(H, W, 3)`` uint8 image pair; returns the ``(H, W)`` float32 mask."""
    if distorted.shape != no_sunglint.shape:
        raise DataFormatError(f"render {distorted.shape} and no_sunglint {no_sunglint.shape} differ in shape")

    render, twin = (torch.from_numpy(_chw(rgb))[None] for rgb in (distorted, no_sunglint))
    mask = glint_mask_batch(render, twin, lower, upper, binary=binary, binary_threshold=binary_threshold)
    return mask[0, 0].numpy()


def load_id_list(path: str | os.PathLike[str]) -> set[str]:
    """IDs of a ``blacklist.txt``/``test_list.txt`` (``#`` headers and blank lines skipped, IDs zero-padded to 4).

    Raises:
        FileNotFoundError: ``path`` is missing.
        DataFormatError: A line is not a numeric scene ID.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ID list {path} is missing (set the option to null to use none)")
    ids: set[str] = set()
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.isdigit():
            raise DataFormatError(f"{path}:{n}: {line!r} is not a scene ID (expected digits like 0042)")
        ids.add(line.zfill(4))
    return ids


def scan_ids(folder: str | os.PathLike[str]) -> list[str]:
    """Sorted scene IDs of the ``render_XXXX*.png`` files in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Sea-Undistort folder {folder} is missing")
    ids = {m.group(1) for p in folder.glob("render_*.png") if (m := _ID.match(p.name))}
    return sorted(ids)


def split_ids(
    ids: Sequence[str], *, blacklist: set[str] | None = None, test_list: set[str] | None = None, seed: int = 42,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), rng: np.random.Generator | None = None,
) -> dict[str, list[str]]:  # fmt: skip
    """The released split: drop the blacklist, hold out the test list, shuffle the rest, cut train/val/test.

    Remaining IDs are sorted, shuffled with ``numpy.random.default_rng(seed)`` and cut with ``int(n * fraction)``
    for train and val; test gets the rest plus the test-list IDs that exist and are not blacklisted [code].
    """
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions {fractions} must sum to 1")
    rng = rng if rng is not None else np.random.default_rng(seed)
    kept = set(ids) - (blacklist or set())
    fixed = kept & (test_list or set())
    remaining = sorted(kept - fixed)
    rng.shuffle(remaining)
    n = len(remaining)
    n_train, n_val = int(n * fractions[0]), int(n * fractions[1])
    return {
        "train": sorted(remaining[:n_train]),
        "val": sorted(remaining[n_train : n_train + n_val]),
        "test": sorted(set(remaining[n_train + n_val :]) | fixed),
    }


def load_scene_settings(
    path: str | os.PathLike[str], metadata_keys: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Per-image metadata of ``scene_settings.json`` keyed by scene ID.

    Accepts a mapping ``{"render_0001": {...}}`` / ``{"0001": {...}}`` or a list of records with an ``image``/``id``
    field. ``metadata_keys`` renames file keys to canonical names (``{canonical: key_in_file}``), since the released
    schema is not documented [assumption].

    Raises:
        FileNotFoundError: ``path`` is missing.
        DataFormatError: Invalid JSON or an unexpected structure.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scene settings {path} are missing")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path} is not valid JSON ({exc})") from exc
    records: dict[str, dict[str, Any]] = {}
    items: list[tuple[str, Any]]
    if isinstance(raw, dict):
        items = list(raw.items())
    elif isinstance(raw, list):
        items = []
        for i, rec in enumerate(raw):
            if not isinstance(rec, dict) or not ({"image", "id"} & rec.keys()):
                raise DataFormatError(f"{path}: record {i} has no 'image' or 'id' field")
            items.append((str(rec.get("image", rec.get("id"))), rec))
    else:
        raise DataFormatError(f"{path}: expected a JSON object or list, got {type(raw).__name__}")
    for key, rec in items:
        m = re.search(r"(\d{1,4})", key)
        if m is None or not isinstance(rec, dict):
            raise DataFormatError(f"{path}: entry {key!r} is not a scene record (expected render_XXXX: {{...}})")
        rec = dict(rec)
        for canonical, in_file in (metadata_keys or {}).items():
            if in_file not in rec:
                raise MissingKeyError(f"{path}: scene {key!r} has no key {in_file!r} (mapped to {canonical!r})")
            rec[canonical] = rec.pop(in_file)
        records[m.group(1).zfill(4)] = rec
    return records


@dataclass(frozen=True)
class SceneRecord:
    """One sample: folder (shader folder) and scene ID."""

    folder: Path
    scene_id: str


class SeaUndistortDataset(Dataset[dict[str, Any]]):
    """One split of the released dataset; samples are raw uint8 arrays (augmentation runs on the device).

    A sample is ``{"lq": (3, H, W) uint8, "gt": (3, H, W) uint8, "id": str}`` plus, with ``add_mask``, the raw
    ``"no_sunglint"`` render (and ``"distorted"`` when ``lq`` is not the distorted render): the data module computes
    the glint mask from them on the device (:func:`glint_mask_batch`).

    Args:
        root: Dataset folder (the flat ``Sea-Undistort/`` folder, or the parent of ``shader_folders``).
        split: ``train``, ``val`` or ``test``.
        pair_mode: Input/target pairing (see :data:`PAIR_MODES`).
        shader_folders: Sub-folders that each hold a full layout (released multi-shader option); ``None`` = root.
        blacklist: List file name inside each folder (``blacklist.txt`` or ``blacklist-short.txt``); ``None``: none.
        test_list: Fixed test list file name; ``None``: none.
        seed: Split seed.
        fractions: Train/val/test fractions.
        add_mask: Also read the renders the glint mask is computed from.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        *,
        pair_mode: PairMode = "normal_no_waves",
        shader_folders: Sequence[str] | None = None,
        blacklist: str | None = "blacklist.txt",
        test_list: str | None = "test_list.txt",
        seed: int = 42,
        fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
        add_mask: bool = True,
    ) -> None:
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, got {split!r}")
        if pair_mode not in PAIR_MODES:
            raise ValueError(f"unknown pair_mode {pair_mode!r}; expected one of {sorted(PAIR_MODES)}")
        self.root = Path(root)
        self.split = split
        self.pair_mode = pair_mode
        self.add_mask = add_mask
        folders = [self.root / s for s in sorted(shader_folders)] if shader_folders else [self.root]
        rng = np.random.default_rng(seed)  # one generator across folders, as released
        self.splits: dict[str, list[SceneRecord]] = {"train": [], "val": [], "test": []}
        for folder in folders:
            black = load_id_list(folder / blacklist) if blacklist else set()
            fixed = load_id_list(folder / test_list) if test_list else set()
            parts = split_ids(scan_ids(folder), blacklist=black, test_list=fixed, fractions=fractions, rng=rng)
            for name, ids in parts.items():
                self.splits[name] += [SceneRecord(folder, i) for i in ids]
        self.samples = sorted(self.splits[split], key=lambda r: (str(r.folder), r.scene_id))

    def __len__(self) -> int:
        return len(self.samples)

    def paths(self, index: int) -> tuple[Path, Path]:
        """Input and target PNG of sample ``index`` for the pair mode."""
        rec = self.samples[index]
        src, dst = PAIR_MODES[self.pair_mode]
        return scene_file(rec.folder, rec.scene_id, src), scene_file(rec.folder, rec.scene_id, dst)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.samples[index]
        lq_path, gt_path = self.paths(index)
        lq, gt = read_rgb(lq_path), read_rgb(gt_path)
        if lq.shape != gt.shape:
            raise DataFormatError(f"{lq_path} is {lq.shape[:2]} but {gt_path} is {gt.shape[:2]}; expected equal sizes")
        sample: dict[str, Any] = {"lq": _chw(lq), "gt": _chw(gt), "id": rec.scene_id}
        if self.add_mask:  # raw renders only; the mask is computed on the device (glint_mask_batch)
            extra = {"no_sunglint": "_no_sunglint"}
            if PAIR_MODES[self.pair_mode][0] != "":
                extra["distorted"] = ""
            for key, variant in extra.items():
                path = scene_file(rec.folder, rec.scene_id, variant)
                image = read_rgb(path)
                if image.shape != lq.shape:
                    raise DataFormatError(
                        f"{path} is {image.shape[:2]} but {lq_path} is {lq.shape[:2]}; expected equal"
                    )
                sample[key] = _chw(image)
        return sample
