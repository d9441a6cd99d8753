"""Fixture writers: tiny UCMerced-ML, AID-ML and DeepGlobe releases in their public layouts (for tests and demos)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from rsim.nar.data.release import AID_ML_CLASSES, DEEPGLOBE_COLORS, UCM_ML_CLASSES

__all__ = ["write_aid_fixture", "write_deepglobe_fixture", "write_ucmerced_fixture"]

UCM_SCENES = ("agricultural", "airplane", "beach", "forest", "harbor")
AID_SCENES = ("airport", "beach", "farmland", "port")


def _labels(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    labels = (rng.random((n, k)) < 0.3).astype(np.uint8)
    labels[labels.sum(axis=1) == 0, 0] = 1
    return labels


def _image(rng: np.random.Generator, h: int, w: int) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))


def write_ucmerced_fixture(root: str | os.PathLike[str], *, per_scene: int = 4, size: int = 32, seed: int = 0) -> Path:
    """Write ``UCMerced_LandUse/Images/<scene>/<scene>NN.tif`` and ``LandUse_Multilabeled.txt`` under ``root``.

    One image per scene is a few pixels short (like the real release). Returns ``root``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    names = [f"{scene}{i:02d}" for scene in UCM_SCENES for i in range(per_scene)]
    labels = _labels(rng, len(names), len(UCM_ML_CLASSES))
    for k, name in enumerate(names):
        folder = root / "UCMerced_LandUse" / "Images" / name.rstrip("0123456789")
        folder.mkdir(parents=True, exist_ok=True)
        height = size - 3 if k % per_scene == 0 else size
        _image(rng, height, size).save(folder / f"{name}.tif")
    lines = ["IMAGE\\LABEL\t" + "\t".join(UCM_ML_CLASSES)]
    lines += [name + "\t" + "\t".join(str(v) for v in row) for name, row in zip(names, labels, strict=True)]
    (root / "LandUse_Multilabeled.txt").write_text("\n".join(lines) + "\n")
    return root


def write_aid_fixture(root: str | os.PathLike[str], *, per_scene: int = 5, size: int = 48, seed: int = 0) -> Path:
    """Write ``images/<scene>/<scene>_<n>.jpg`` and ``multilabel.csv`` under ``root``; returns ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    names = [f"{scene}_{i + 1}" for scene in AID_SCENES for i in range(per_scene)]
    labels = _labels(rng, len(names), len(AID_ML_CLASSES))
    for name in names:
        folder = root / "images" / name.rsplit("_", 1)[0]
        folder.mkdir(parents=True, exist_ok=True)
        _image(rng, size, size).save(folder / f"{name}.jpg", quality=95)
    lines = ["IMAGE\\LABEL," + ",".join(AID_ML_CLASSES)]
    lines += [name + "," + ",".join(str(v) for v in row) for name, row in zip(names, labels, strict=True)]
    (root / "multilabel.csv").write_text("\n".join(lines) + "\n")
    return root


def write_deepglobe_fixture(
    root: str | os.PathLike[str], *, num_images: int = 3, size: int = 64, seed: int = 0
) -> Path:
    """Write ``train/<id>_sat.jpg`` and colour-coded ``train/<id>_mask.png`` (blocks of the 6 classes + unknown)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    (root / "train").mkdir(parents=True, exist_ok=True)
    palette = np.array([*DEEPGLOBE_COLORS, (0, 0, 0)], dtype=np.uint8) * 255
    for i in range(num_images):
        image_id = str(100000 + 7919 * i)
        blocks = rng.integers(0, 7, size=(8, 8))
        mask = palette[np.kron(blocks, np.ones((size // 8, size // 8), dtype=np.int64))]
        Image.fromarray(mask).save(root / "train" / f"{image_id}_mask.png")
        _image(rng, size, size).save(root / "train" / f"{image_id}_sat.jpg", quality=95)
    return root
