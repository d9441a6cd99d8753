"""8-bit renderings of BigEarthNet patches: true-colour S2, SAR ``[VH, VV, mean]``, CLC colour maps; PNG codec."""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
from PIL import Image
from rsim.core.data.nomenclature import clc_table
from rsim.core.errors import DataFormatError

ImageSource = Literal["s2_rgb", "reference_colors", "auto"]
RGB_BANDS: tuple[str, str, str] = ("B04", "B03", "B02")

__all__ = ["RGB_BANDS", "ImageSource", "decode_png", "encode_png", "reference_colors", "s2_true_colour", "sar_rgb"]


def s2_true_colour(bands: dict[str, np.ndarray], *, clip: float = 3000.0) -> np.ndarray:
    """True-colour (B04, B03, B02) uint8 (H, W, 3) image from S2 L2A reflectance ×10000, linearly clipped to ``clip``.

    Raises:
        DataFormatError: A band is missing or the bands' shapes differ.
    """
    missing = [b for b in RGB_BANDS if b not in bands]
    if missing:
        raise DataFormatError(f"true-colour rendering needs bands {RGB_BANDS}, missing {missing}")
    stack = np.stack([bands[b].astype(np.float32) for b in RGB_BANDS], axis=-1)
    return (np.clip(stack / clip, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def sar_rgb(vh_db: np.ndarray, vv_db: np.ndarray, *, db_range: tuple[float, float] = (-30.0, 5.0)) -> np.ndarray:
    """SAR rendered as a 3-channel uint8 image ``[VH, VV, mean(VH, VV)]`` with dB linearly scaled over ``db_range``.

    Raises:
        DataFormatError: Shapes differ or a value is NaN.
    """
    if vh_db.shape != vv_db.shape:
        raise DataFormatError(f"SAR bands differ in shape: VH {vh_db.shape}, VV {vv_db.shape}")
    if np.isnan(vh_db).any() or np.isnan(vv_db).any():
        raise DataFormatError("SAR band holds NaN values; expected finite backscatter in dB")
    lo, hi = db_range
    stack = np.stack([vh_db, vv_db, (vh_db + vv_db) / 2.0], axis=-1).astype(np.float32)
    return (np.clip((stack - lo) / (hi - lo), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def reference_colors(reference_map: np.ndarray, *, nodata: int = 0) -> np.ndarray:
    """The CLC colour rendering (uint8 (H, W, 3)) of a Level-3 reference map (nodata black)."""
    out = np.zeros((*reference_map.shape, 3), dtype=np.uint8)
    for entry in clc_table():
        if entry.code != nodata:
            out[reference_map == entry.code] = entry.color[:3]
    return out


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (H, W, 3) or (H, W) array."""
    if image.dtype != np.uint8:
        raise DataFormatError(f"PNG encoding expects uint8, got {image.dtype}")
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def decode_png(data: bytes, *, source: str = "image") -> np.ndarray:
    """Decode image bytes (PNG/JPEG) to uint8 (H, W, 3) RGB.

    Raises:
        DataFormatError: The bytes are not a readable image.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))
    except Exception as exc:  # PIL raises UnidentifiedImageError/OSError on truncated data
        raise DataFormatError(f"{source}: cannot decode image bytes ({exc}); expected PNG or JPEG") from exc
