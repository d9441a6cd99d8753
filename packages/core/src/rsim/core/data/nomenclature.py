"""BigEarthNet bands and the 19-class nomenclature (CLC Level-3 codes and v1 43-class names mapped to it).

The mapping table is ``resources/clc_metadata.json``, copied unchanged from ``kai-tub/bigearthnet-pipeline``
(MIT, commit 78551a6): 44 CLC Level-3 codes plus 999, each with its CLC name, 19-class name and colour.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

import numpy as np

S1_BANDS: tuple[str, ...] = ("VV", "VH")
S2_BANDS: tuple[str, ...] = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B11",
    "B12",
)
#: Native ground sampling distance (m) of every BigEarthNet band; 10 m bands are 120 px, 20 m 60 px, 60 m 20 px.
BAND_GSD: dict[str, int] = {
    "VV": 10, "VH": 10,
    "B02": 10, "B03": 10, "B04": 10, "B08": 10,
    "B05": 20, "B06": 20, "B07": 20, "B8A": 20, "B11": 20, "B12": 20,
    "B01": 60, "B09": 60,
}  # fmt: skip
PATCH_SIZE_M = 1200

#: Band presets of ``BigEarthNetDataModule``, in the channel order of the stacked tensor.
BAND_PRESETS: dict[str, tuple[str, ...]] = {
    "S1": ("VV", "VH"),
    # 10 m + 20 m bands (B01/B09 are atmospheric): the ConfigILM/reBEN "S2" group order.
    "S2": ("B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12"),
    "S1S2": ("VV", "VH", "B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12"),
    "RGB": ("B04", "B03", "B02"),
    "S2_ALL": ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"),
}

#: The 19 classes in CLC-code order (the order of the BigEarthNet-MM nomenclature table). This is rsim's
#: default label order; it is stored with every checkpoint. ``label_names("alphabetical")`` gives ConfigILM's
#: lexicographically sorted order used by the BIFOLD reBEN checkpoints.
BEN19_LABELS: tuple[str, ...] = (
    "Urban fabric",
    "Industrial or commercial units",
    "Arable land",
    "Permanent crops",
    "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland and sparsely vegetated areas",
    "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub",
    "Beaches, dunes, sands",
    "Inland wetlands",
    "Coastal wetlands",
    "Inland waters",
    "Marine waters",
)
UNLABELED = "UNLABELED"
LabelOrder = Literal["clc", "alphabetical"]


def band_presets(preset: str | Sequence[str]) -> tuple[str, ...]:
    """Resolve a preset name (``S1``, ``S2``, ``S1S2``, ``RGB``, ``S2_ALL``) or validate an explicit band list."""
    if isinstance(preset, str):
        if preset not in BAND_PRESETS:
            raise ValueError(f"unknown band preset {preset!r}; expected one of {sorted(BAND_PRESETS)}")
        return BAND_PRESETS[preset]
    bands = tuple(preset)
    unknown = [b for b in bands if b not in BAND_GSD]
    if unknown or not bands:
        raise ValueError(f"unknown BigEarthNet band(s) {unknown}; expected names from {list(BAND_GSD)}")
    return bands


def native_size(band: str) -> int:
    """Pixel size of a band's 1200 m patch at its native resolution."""
    return PATCH_SIZE_M // BAND_GSD[band]


def label_names(order: LabelOrder = "clc") -> tuple[str, ...]:
    """Return the 19 class names in the requested order."""
    if order == "clc":
        return BEN19_LABELS
    if order == "alphabetical":
        return tuple(sorted(BEN19_LABELS))
    raise ValueError(f"unknown label order {order!r}; expected 'clc' or 'alphabetical'")


@dataclass(frozen=True)
class ClcEntry:
    """One row of the CLC table."""

    code: int
    name_clc: str
    name_19: str
    color: tuple[int, int, int, int]


@cache
def clc_table() -> tuple[ClcEntry, ...]:
    """The 45-entry CLC table shipped with the package."""
    text = resources.files("rsim.core.data").joinpath("resources/clc_metadata.json").read_text()
    return tuple(
        ClcEntry(int(e["code"]), e["name_clc"], e["name_19"], tuple(e["color"])) for e in json.loads(text)["clc_data"]
    )


@cache
def clc_code_to_19() -> dict[int, str]:
    """Map CLC Level-3 code → 19-class name (or ``UNLABELED``)."""
    return {e.code: e.name_19 for e in clc_table()}


@cache
def clc_name_to_19() -> dict[str, str]:
    """Map BigEarthNet v1 (43-class CLC Level-3) name → 19-class name (or ``UNLABELED``)."""
    return {e.name_clc: e.name_19 for e in clc_table()}


def v1_labels_to_19(labels: Iterable[str], *, source: str = "labels") -> list[str]:
    """Map v1 43-class names to the 19-class nomenclature by exact CLC name (never by similarity).

    Args:
        labels: v1 label names as written in ``*_labels_metadata.json``.
        source: Name of the file or field, used in error messages.

    Raises:
        KeyError: A name is not a CLC Level-3 name.
    """
    table = clc_name_to_19()
    out: list[str] = []
    for name in labels:
        if name not in table:
            raise KeyError(f"{source}: {name!r} is not a CLC Level-3 class name of BigEarthNet v1")
        mapped = table[name]
        if mapped != UNLABELED and mapped not in out:
            out.append(mapped)
    return out


def multi_hot(labels: Iterable[str], order: LabelOrder = "clc", *, source: str = "labels") -> np.ndarray:
    """Encode 19-class names as a float32 multi-hot vector in ``order``.

    Raises:
        KeyError: A name is not one of the 19 classes.
    """
    names = label_names(order)
    index = {n: i for i, n in enumerate(names)}
    vec = np.zeros(len(names), dtype=np.float32)
    for name in labels:
        if name not in index:
            raise KeyError(f"{source}: {name!r} is not one of the 19 BigEarthNet classes")
        vec[index[name]] = 1.0
    return vec


def reference_map_to_multi_hot(codes: np.ndarray, order: LabelOrder = "clc", nodata: int = 0) -> np.ndarray:
    """Multi-hot of the classes present in a CLC Level-3 reference map (nodata and unlabelled codes ignored).

    Raises:
        ValueError: The map contains a code that is not in the CLC table.
    """
    table = clc_code_to_19()
    present = [int(c) for c in np.unique(codes) if int(c) != nodata]
    unknown = [c for c in present if c not in table]
    if unknown:
        raise ValueError(f"reference map holds codes {unknown} that are not CLC Level-3 codes")
    return multi_hot({table[c] for c in present} - {UNLABELED}, order)
