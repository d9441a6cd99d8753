"""COCO run-length encoding of binary masks (the mask format of Terra-CoT records), through pycocotools."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from rsim.core.errors import DataFormatError

__all__ = ["decode_rle", "encode_rle"]


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode an (H, W) binary mask as COCO RLE with a UTF-8 ``counts`` string (JSON-serialisable).

    Raises:
        DataFormatError: The mask is not two-dimensional.
    """
    if mask.ndim != 2:
        raise DataFormatError(f"mask must be (H, W), got shape {mask.shape}")
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: Any, *, source: str = "mask") -> np.ndarray:
    """Decode a COCO RLE (``{"size": [H, W], "counts": str | bytes | list}``) to a bool (H, W) mask.

    Args:
        rle: The RLE dictionary (compressed string counts, or uncompressed list counts).
        source: Where the RLE comes from, used in error messages.

    Raises:
        DataFormatError: The value is not a valid COCO RLE.
    """
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise DataFormatError(f"{source}: expected a COCO RLE dict with 'size' and 'counts', got {type(rle).__name__}")
    size = rle["size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(int(s) > 0 for s in size)):
        raise DataFormatError(f"{source}: RLE 'size' must be [H, W] with positive ints, got {size!r}")
    h, w = int(size[0]), int(size[1])
    counts = rle["counts"]
    try:
        if isinstance(counts, list):
            obj = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
        else:
            obj = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        with warnings.catch_warnings():  # pycocotools' numpy-2 copy-keyword deprecation
            warnings.simplefilter("ignore", DeprecationWarning)
            out = mask_utils.decode(obj)
    except Exception as exc:  # pycocotools raises bare ValueError/TypeError on corrupt counts
        raise DataFormatError(f"{source}: corrupt COCO RLE counts ({exc})") from exc
    if int(mask_utils.area(obj)) > h * w or out.shape != (h, w):
        raise DataFormatError(f"{source}: RLE decodes to {out.shape}, expected ({h}, {w})")
    return out.astype(bool)
