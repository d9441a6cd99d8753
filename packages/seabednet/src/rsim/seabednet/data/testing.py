"""Write a small synthetic dataset in the exact MagicBathyNet layout (for tests, the demo and the quickstart).

The synthetic scene follows a two-band Beer-Lambert shallow-water model, so depth is recoverable from colour
(blue/green ratios), and seabed classes change the bottom albedo. Files use the official formats: 3-band uint8
GeoTIFF images with 0 as no-data, float32 negative depth with 0 = no label, RGB-palette uint8 labels, ID-list
split files and ``2 x 3`` ``norm_param`` text files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rsim.core.io import atomic_path
from rsim.seabednet.data.magicbathynet import MODALITIES, encode_palette, site_spec

__all__ = ["AGIA_NAPA_IDS", "synthetic_scene", "write_magicbathynet", "write_scene"]

#: The 35 annotated Agia Napa IDs of the original notebooks (last 7 = pixel-classification test IDs).
AGIA_NAPA_IDS = (
    "409 418 350 399 361 430 380 359 371 377 379 360 368 419 389 420 401 408 352 388 362 421 412 351 349 390 "
    "400 378 411 387 410 398 370 369 397"
).split()

# Bottom albedo (R, G, B) per class index; the last entry is used for "undefined".
_ALBEDO = {
    "agia_napa": (
        (0.05, 0.20, 0.10),
        (0.25, 0.25, 0.25),
        (0.30, 0.15, 0.10),
        (0.60, 0.55, 0.45),
        (0.4, 0.4, 0.4),
    ),
    "puck_lagoon": ((0.55, 0.50, 0.40), (0.08, 0.22, 0.10), (0.4, 0.4, 0.4)),
}
_ATTENUATION = np.array([0.35, 0.08, 0.04], dtype=np.float32)  # per metre, R G B
_WATER = np.array([0.02, 0.08, 0.12], dtype=np.float32)


def _smooth_field(rng: np.random.Generator, size: int, terms: int = 4) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    field = np.zeros((size, size), np.float32)
    for _ in range(terms):
        fx, fy = rng.uniform(0.3, 2.0, 2)
        phase = rng.uniform(0, 2 * np.pi)
        field += np.sin(2 * np.pi * (fx * xx + fy * yy) + phase).astype(np.float32)
    return (field - field.min()) / max(float(np.ptp(field)), 1e-6)


def synthetic_scene(
    rng: np.random.Generator, site: str, size: int, max_depth: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One synthetic patch.

    Returns:
        ``(image uint8 [3, H, W], depth float32 [H, W] in negative metres with 0 = no label,
        labels int64 [H, W])``.
    """
    spec = site_spec(site)
    depth = 0.5 + (max_depth - 0.5) * _smooth_field(rng, size)
    cls_field = _smooth_field(rng, size, terms=3)
    n_real = spec.num_classes - 1
    labels = np.minimum((cls_field * n_real).astype(np.int64), n_real - 1)
    albedo = np.asarray(_ALBEDO[site], dtype=np.float32)[labels].transpose(2, 0, 1)
    att = np.exp(-2.0 * _ATTENUATION[:, None, None] * depth[None])
    refl = _WATER[:, None, None] * (1 - att) + albedo * att
    refl = refl + rng.normal(0, 0.004, refl.shape).astype(np.float32)
    image = np.clip(refl / 0.7 * 255, 1, 255).astype(np.uint8)
    depth_out = (-depth).astype(np.float32)
    # No-label holes in depth, undefined (black) label areas, and an image no-data strip.
    q = max(1, size // 6)
    r0, c0 = rng.integers(0, size - q, 2)
    depth_out[r0 : r0 + q, c0 : c0 + q] = 0.0
    r1, c1 = rng.integers(0, size - q, 2)
    labels[r1 : r1 + q, c1 : c1 + q] = spec.undefined_index
    if rng.random() < 0.5:
        image[:, :, : max(1, size // 10)] = 0
    return image, depth_out, labels


def _write(path: Path, array: np.ndarray, crs: str, x0: float, pixel: float) -> None:
    profile = {
        "driver": "GTiff",
        "height": array.shape[1],
        "width": array.shape[2],
        "count": array.shape[0],
        "dtype": array.dtype.name,
        "crs": crs,
        "transform": Affine(pixel, 0.0, x0, 0.0, -pixel, 3_000_000.0),
    }
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(array)


def write_magicbathynet(
    root: str | os.PathLike[str],
    *,
    sites: Sequence[str] = ("agia_napa",),
    modalities: Sequence[str] = ("spot6",),
    num_patches: int = 10,
    size: int | None = None,
    seed: int = 0,
) -> Path:
    """Write a synthetic MagicBathyNet dataset in the official layout.

    Args:
        root: Output root; ``root/{site}/...`` is created.
        sites: Sites to write (``agia_napa``, ``puck_lagoon``).
        modalities: Modalities to write (``aerial``, ``s2``, ``spot6``).
        num_patches: Patches per site (all annotated with depth and labels).
        size: Patch side in pixels; ``None`` uses the native size (aerial 720, SPOT-6 30, S2 18).
        seed: Random seed.

    Returns:
        ``root`` as a ``Path``.
    """
    out = Path(root)
    rng = np.random.default_rng(seed)
    for site in sites:
        spec = site_spec(site)
        if site == "agia_napa":
            n_test = max(1, round(0.2 * num_patches))
            ids = AGIA_NAPA_IDS[: num_patches - n_test] + AGIA_NAPA_IDS[-7:][:n_test]
        else:
            ids = [str(1000 + i) for i in range(num_patches)]
        max_depth = 0.9 * spec.depth_scale
        for modality in modalities:
            side = size or MODALITIES[modality]
            pixel = 180.0 / side
            for k, pid in enumerate(ids):
                image, depth, labels = synthetic_scene(rng, site, side, max_depth)
                x0 = 500_000.0 + 200.0 * k
                _write(out / site / "img" / modality / f"img_{pid}.tif", image, spec.crs, x0, pixel)
                _write(out / site / "depth" / modality / f"depth_{pid}.tif", depth[None], spec.crs, x0, pixel)
                rgb = encode_palette(labels, site)
                _write(out / site / "gts" / modality / f"gts_{pid}.tif", rgb, spec.crs, x0, pixel)
            for source in ("bathymetry", "pixel_class"):
                with atomic_path(out / site / f"{modality}_split_{source}.txt") as tmp:
                    tmp.write_text("\n".join(ids) + "\n")
            norm = np.array([[0.0, 0.0, 0.0], [220.0, 230.0, 240.0]], dtype=np.float32)
            with atomic_path(out / site / f"norm_param_{modality}_{spec.code}.txt") as tmp:
                np.savetxt(tmp, norm, fmt="%.6f")
    return out


def write_scene(path: str | os.PathLike[str], *, site: str = "agia_napa", size: int = 100, seed: int = 0) -> Path:
    """Write one georeferenced synthetic image GeoTIFF (3-band uint8) of ``size x size`` pixels."""
    rng = np.random.default_rng(seed + 10_000)
    spec = site_spec(site)
    image, _, _ = synthetic_scene(rng, site, size, 0.9 * spec.depth_scale)
    out = Path(path)
    _write(out, image, spec.crs, 500_000.0, 6.0)
    return out
