"""A generated multi-label image dataset that a tiny CNN learns in CPU minutes (demo and experiments).

Each class ``c`` has a fixed random low-frequency ``3 × k × k`` texture (3 × 3 cells of ±1) and a prevalence drawn
from ``prevalence_range``; an image is Gaussian background noise with the texture of every present class pasted
at a random position. Every sample has at least one label. The generator is a seeded numpy
Generator: same arguments, same arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from rsim.nar.data.images import ImageTable, MultiLabelImageDataModule

__all__ = ["SyntheticMultiLabelDataModule", "generate_multilabel_images"]


def generate_multilabel_images(
    num_samples: int,
    num_classes: int = 10,
    img_size: int = 24,
    patch_size: int = 12,
    prevalence_range: tuple[float, float] = (0.08, 0.5),
    noise_std: float = 0.25,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images (N, 3, S, S) uint8, labels (N, K) uint8)``.

    Raises:
        ValueError: Sizes that do not fit or prevalences outside (0, 1].
    """
    if num_samples < 1 or num_classes < 1:
        raise ValueError(f"num_samples and num_classes must be >= 1, got {num_samples}, {num_classes}")
    if not 0 < patch_size <= img_size:
        raise ValueError(f"patch_size must be in (0, img_size={img_size}], got {patch_size}")
    lo, hi = prevalence_range
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"prevalence_range must satisfy 0 < lo <= hi <= 1, got {prevalence_range}")
    rng = np.random.default_rng(seed)
    # low-frequency textures: random 3 × 3 × 3 cells, nearest-upsampled to the patch (robust to the stem's stride)
    cells = rng.choice([-1.0, 1.0], size=(num_classes, 3, 3, 3))
    reps = -(-patch_size // 3)
    textures = np.repeat(np.repeat(cells, reps, axis=2), reps, axis=3)[:, :, :patch_size, :patch_size]
    prevalence = np.sort(rng.uniform(lo, hi, size=num_classes))[::-1]
    labels = (rng.random((num_samples, num_classes)) < prevalence).astype(np.uint8)
    empty = labels.sum(axis=1) == 0
    labels[empty, rng.integers(0, num_classes, size=int(empty.sum()))] = 1
    images = rng.normal(0.0, noise_std, size=(num_samples, 3, img_size, img_size))
    span = img_size - patch_size + 1
    for i in range(num_samples):
        for c in np.flatnonzero(labels[i]):
            y, x = rng.integers(0, span, size=2)
            images[i, :, y : y + patch_size, x : x + patch_size] += textures[c]
    images = np.clip((images + 2.0) / 4.0 * 255.0, 0, 255).astype(np.uint8)
    return images, labels


class _ArrayReader:
    """Picklable ``read(i)`` over an in-memory array."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def __call__(self, i: int) -> np.ndarray:
        return self.images[i]


class SyntheticMultiLabelDataModule(MultiLabelImageDataModule):
    """The generated dataset (see module docstring) with the generic image pipeline and noise injection.

    Args:
        num_samples: Total samples (split 70/15/15 by default).
        num_classes: Number of labels.
        image_size: Side of the generated images (``img_size`` is the network input size).
        patch_size: Side of each class texture.
        data_seed: Seed of the generator.
        **kwargs: Arguments of :class:`~rsim.nar.data.images.MultiLabelImageDataModule`.
    """

    def __init__(
        self,
        num_samples: int = 3000,
        num_classes: int = 10,
        image_size: int = 24,
        patch_size: int = 12,
        data_seed: int = 0,
        img_size: int = 24,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.12, 0.12, 0.12),
        **kwargs: Any,
    ) -> None:
        super().__init__(img_size=img_size, mean=mean, std=std, **kwargs)
        self.num_samples = num_samples
        self.num_classes_ = num_classes
        self.image_size = image_size
        self.patch_size = patch_size
        self.data_seed = data_seed

    def load_table(self) -> ImageTable:  # noqa: D102
        images, labels = generate_multilabel_images(
            self.num_samples,
            self.num_classes_,
            img_size=self.image_size,
            patch_size=self.patch_size,
            seed=self.data_seed,
        )
        names = np.array([f"synthetic_{i:05d}" for i in range(self.num_samples)])
        classes = tuple(f"class_{c:02d}" for c in range(self.num_classes_))
        return ImageTable(names, labels, classes, _ArrayReader(images), f"synthetic(seed={self.data_seed})")
