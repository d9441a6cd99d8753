"""Per-band normalisation statistics, keyed by (dataset version, split, interpolation).

Each model declares which table it uses; the table name is stored with its checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: ConfigILM, reBEN (v2) train split, bands bilinearly interpolated to 120 px: (mean, std) per band.
_BENV2_TRAIN_120_BILINEAR: dict[str, tuple[float, float]] = {
    "B01": (360.6, 563.2), "B02": (438.4, 607.0), "B03": (614.1, 603.3), "B04": (588.4, 684.6),
    "B05": (942.7, 727.6), "B06": (1769.8, 1087.4), "B07": (2049.5, 1261.4), "B08": (2193.3, 1369.4),
    "B8A": (2235.5, 1342.5), "B09": (2241.1, 1294.4), "B11": (1568.2, 1063.9), "B12": (997.7, 806.9),
    "VV": (-12.64, 5.13), "VH": (-19.35, 5.59),
}  # fmt: skip

BAND_STATS: dict[str, dict[str, tuple[float, float]]] = {
    "benv2_train_120_bilinear": _BENV2_TRAIN_120_BILINEAR,
}


def band_stats(table: str, bands: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(mean, std)`` tensors of shape ``(C,)`` for ``bands`` from the named table.

    Raises:
        KeyError: Unknown table or a band missing from it.
    """
    if table not in BAND_STATS:
        raise KeyError(f"unknown statistics table {table!r}; expected one of {sorted(BAND_STATS)}")
    values = BAND_STATS[table]
    missing = [b for b in bands if b not in values]
    if missing:
        raise KeyError(f"statistics table {table!r} has no entry for band(s) {missing}")
    mean = torch.tensor([values[b][0] for b in bands], dtype=torch.float32)
    std = torch.tensor([values[b][1] for b in bands], dtype=torch.float32)
    return mean, std
