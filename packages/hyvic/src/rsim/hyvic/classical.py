"""Classical baseline: spectral PCA to k components, then JPEG 2000 per component (GDAL's OpenJPEG driver).

The JPEG 2000 coder is the OpenJPEG build inside rasterio's GDAL (driver ``JP2OpenJPEG``), so no extra
dependency is needed. The rate counts the JP2 file plus the PCA basis, means and per-component ranges
as float32.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class PCAJPEG2000Result:
    """Reconstruction and rate of one PCA+JPEG2000 coding.

    Attributes:
        x_hat: C x H x W float32 reconstruction in [0, 1].
        num_bits: Total bits (JP2 file + side information).
        bpppc: Bits per pixel per channel.
    """

    x_hat: np.ndarray
    num_bits: int
    bpppc: float


def pca_jpeg2000(x: np.ndarray, components: int, quality: float = 25.0) -> PCAJPEG2000Result:
    """Code a C x H x W image in [0, 1] with PCA (``components``) and lossy JPEG 2000 at ``quality``.

    Args:
        x: Image, float values in [0, 1].
        components: Principal components kept (1..C).
        quality: GDAL ``QUALITY`` option: target size in percent of the uncompressed 16-bit components.
    """
    import rasterio

    c, h, w = x.shape
    if not 1 <= components <= c:
        raise ValueError(f"components must be in 1..{c}, got {components}")
    flat = x.reshape(c, -1).astype(np.float64)
    mean = flat.mean(1, keepdims=True)
    u, _, _ = np.linalg.svd(flat - mean, full_matrices=False)
    basis = u[:, :components].astype(np.float32).astype(np.float64)  # stored as float32
    scores = basis.T @ (flat - mean)
    lo, hi = scores.min(1, keepdims=True), scores.max(1, keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    q = np.round((scores - lo) / span * 65535).astype(np.uint16).reshape(components, h, w)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        path = Path(tmp) / "pca.jp2"
        with rasterio.open(
            path,
            "w",
            driver="JP2OpenJPEG",
            count=components,
            height=h,
            width=w,
            dtype="uint16",
            QUALITY=str(quality),
            REVERSIBLE="NO",
            YCBCR420="NO",
        ) as dst:
            dst.write(q)
        jp2_bits = 8 * path.stat().st_size
        with rasterio.open(path) as src:
            dq = src.read().reshape(components, -1).astype(np.float64)
    rec_scores = dq / 65535 * span + lo
    x_hat = np.clip(basis @ rec_scores + mean, 0, 1).astype(np.float32).reshape(c, h, w)
    side_bits = 32 * (c * components + c + 2 * components)
    bits = jp2_bits + side_bits
    return PCAJPEG2000Result(x_hat, bits, bits / (c * h * w))


__all__ = ["PCAJPEG2000Result", "pca_jpeg2000"]
