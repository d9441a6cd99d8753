"""Attributes of a BigEarthNet v2 reference map: classes, coverage tiers, regions, areas, adjacency, positions.

Every quantity is computed from the CLC Level-3 map mapped to the 19-class nomenclature of ``rsim.core``
(UNLABELED codes and nodata 0 are ignored; shares are of the whole 120 x 120 patch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from rsim.core.data.nomenclature import BEN19_LABELS, UNLABELED, clc_code_to_19
from rsim.core.errors import DataFormatError
from scipy import ndimage

Tier = Literal["primary", "secondary", "marginal"]
#: Compass words counter-clockwise from east, 45 degrees apart.
DIRECTIONS: tuple[str, ...] = ("east", "north-east", "north", "north-west", "west", "south-west", "south", "south-east")
PIXEL_AREA_M2 = 100.0  # 10 m x 10 m


@dataclass(frozen=True)
class AttributeConfig:
    """Options of the attribute extraction (each is documented in the README "Assumptions").

    Attributes:
        connectivity: 4 or 8 neighbours for connected regions [assumption: 8].
        primary_share: Share above which a class is ``primary`` [paper: 25 %].
        marginal_share: Share below which a class is ``marginal`` [paper: 5 %].
        area_rounding_m2: Areas are rounded to the nearest multiple [paper: 1,000 m²].
        min_region_px: Regions smaller than this are ignored when counting regions [assumption: 1].
        adjacency_radius: Dilation iterations of the 3x3 structuring element [paper: 1].
        nodata: Reference-map nodata value.
    """

    connectivity: int = 8
    primary_share: float = 0.25
    marginal_share: float = 0.05
    area_rounding_m2: int = 1000
    min_region_px: int = 1
    adjacency_radius: int = 1
    nodata: int = 0

    def __post_init__(self) -> None:
        if self.connectivity not in (4, 8):
            raise ValueError(f"connectivity must be 4 or 8, got {self.connectivity}")
        if not 0.0 < self.marginal_share <= self.primary_share < 1.0:
            raise ValueError("shares must satisfy 0 < marginal_share <= primary_share < 1")
        if self.area_rounding_m2 <= 0 or self.min_region_px < 1 or self.adjacency_radius < 1:
            raise ValueError("area_rounding_m2, min_region_px and adjacency_radius must be positive")


@dataclass(frozen=True)
class Instance:
    """One connected region of a class (pixel coordinates: row down, column right, origin top-left).

    Attributes:
        pixels: Pixel count.
        area_m2: Area rounded to ``area_rounding_m2``.
        share: Pixel share of the whole patch.
        bbox: ``(row0, col0, row1, col1)`` with exclusive ends.
        fill: Pixels / box pixels.
        centroid: ``(row, col)`` of the pixel centres' mean.
        interior: ``(row, col)`` of a pixel inside the region (the centroid pixel if inside, else the pixel
            farthest from the region's border).
    """

    pixels: int
    area_m2: int
    share: float
    bbox: tuple[int, int, int, int]
    fill: float
    centroid: tuple[float, float]
    interior: tuple[int, int]


@dataclass(frozen=True)
class ClassAttributes:
    """All facts about one present class."""

    name: str
    pixels: int
    share: float
    tier: Tier
    area_m2: int
    instances: tuple[Instance, ...]

    @property
    def n_regions(self) -> int:
        """Number of connected regions (after ``min_region_px``)."""
        return len(self.instances)

    @property
    def largest(self) -> Instance:
        """The largest region."""
        return self.instances[0]


@dataclass(frozen=True)
class PatchAttributes:
    """Facts of a reference map: present classes (largest first) and adjacent class pairs."""

    classes: tuple[ClassAttributes, ...]
    adjacency: frozenset[frozenset[str]] = field(default_factory=frozenset)

    def by_name(self) -> dict[str, ClassAttributes]:
        """Present classes keyed by name."""
        return {c.name: c for c in self.classes}

    def adjacent(self, a: str, b: str) -> bool:
        """Whether classes ``a`` and ``b`` touch."""
        return frozenset((a, b)) in self.adjacency

    def neighbours(self, name: str) -> list[str]:
        """Present classes touching ``name``, in class order (largest first)."""
        return [c.name for c in self.classes if c.name != name and self.adjacent(name, c.name)]


def round_area(pixels: int, step: int = 1000) -> int:
    """Area of ``pixels`` 10 m pixels in m², rounded half-up to a multiple of ``step``."""
    return int(math.floor(pixels * PIXEL_AREA_M2 / step + 0.5) * step)


def tier_of(share: float, config: AttributeConfig) -> Tier:
    """Coverage tier: primary > ``primary_share``, marginal < ``marginal_share``, secondary in between."""
    if share > config.primary_share:
        return "primary"
    if share < config.marginal_share:
        return "marginal"
    return "secondary"


def direction(from_rc: tuple[float, float], to_rc: tuple[float, float]) -> str:
    """Compass word of ``to`` seen from ``from`` (north = up = decreasing row), 45-degree bins centred on the axes."""
    dy = from_rc[0] - to_rc[0]
    dx = to_rc[1] - from_rc[1]
    angle = math.degrees(math.atan2(dy, dx)) % 360.0
    return DIRECTIONS[int(((angle + 22.5) % 360.0) // 45.0)]


def class_map(reference_map: np.ndarray, *, source: str = "reference map", nodata: int = 0) -> np.ndarray:
    """Map CLC Level-3 codes to 19-class indices (0..18); nodata and UNLABELED become -1.

    Raises:
        DataFormatError: The map is not 2-D or holds a code outside the CLC table.
    """
    if reference_map.ndim != 2:
        raise DataFormatError(f"{source}: expected a 2-D reference map, got shape {reference_map.shape}")
    table = clc_code_to_19()
    index = {n: i for i, n in enumerate(BEN19_LABELS)}
    codes, inverse = np.unique(reference_map, return_inverse=True)
    lut = np.full(len(codes), -1, dtype=np.int16)
    for k, code in enumerate(codes.tolist()):
        if code == nodata:
            continue
        if code not in table:
            raise DataFormatError(f"{source}: code {code} is not a CLC Level-3 code of the BigEarthNet table")
        name = table[code]
        if name != UNLABELED:
            lut[k] = index[name]
    return lut[inverse.reshape(reference_map.shape)]


def _interior(mask: np.ndarray, centroid: tuple[float, float], offset: tuple[int, int]) -> tuple[int, int]:
    r, c = round(centroid[0]) - offset[0], round(centroid[1]) - offset[1]
    if 0 <= r < mask.shape[0] and 0 <= c < mask.shape[1] and mask[r, c]:
        return r + offset[0], c + offset[1]
    dist = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    rr, cc = np.unravel_index(int(np.argmax(dist)), mask.shape)
    return rr.item() + offset[0], cc.item() + offset[1]


def extract_attributes(
    reference_map: np.ndarray, config: AttributeConfig | None = None, *, source: str = "reference map"
) -> PatchAttributes:
    """Compute every fact used by the generators from a CLC Level-3 reference map.

    Args:
        reference_map: ``(H, W)`` CLC codes (uint16, nodata 0).
        config: Extraction options.
        source: Name used in error messages (patch id or file).

    Returns:
        Present classes sorted by decreasing pixel count (ties by class order) and the adjacent pairs.
    """
    config = config or AttributeConfig()
    labels = class_map(reference_map, source=source, nodata=config.nodata)
    total = labels.size
    structure = ndimage.generate_binary_structure(2, 2 if config.connectivity == 8 else 1)
    dilate = np.ones((3, 3), dtype=bool)
    classes: list[ClassAttributes] = []
    dilated: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    counts = np.bincount(labels[labels >= 0].ravel(), minlength=len(BEN19_LABELS))
    for idx in np.flatnonzero(counts):
        name = BEN19_LABELS[idx]
        mask = labels == idx
        regions, n = ndimage.label(mask, structure=structure)
        sizes = np.bincount(regions.ravel(), minlength=n + 1)[1:]
        slices = ndimage.find_objects(regions)
        instances: list[Instance] = []
        for k in np.argsort(-sizes, kind="stable"):
            px = int(sizes[k])
            if px < config.min_region_px:
                continue
            sl = slices[k]
            assert sl is not None
            sub = regions[sl] == k + 1
            rows, cols = np.nonzero(sub)
            centroid = (float(rows.mean() + sl[0].start), float(cols.mean() + sl[1].start))
            bbox = (sl[0].start, sl[1].start, sl[0].stop, sl[1].stop)
            instances.append(
                Instance(
                    pixels=px,
                    area_m2=round_area(px, config.area_rounding_m2),
                    share=px / total,
                    bbox=bbox,
                    fill=px / sub.size,
                    centroid=centroid,
                    interior=_interior(sub, centroid, (sl[0].start, sl[1].start)),
                )
            )
        pixels = int(counts[idx])
        share = pixels / total
        classes.append(
            ClassAttributes(
                name=name,
                pixels=pixels,
                share=share,
                tier=tier_of(share, config),
                area_m2=round_area(pixels, config.area_rounding_m2),
                instances=tuple(instances),
            )
        )
        masks[name] = mask
        dilated[name] = ndimage.binary_dilation(mask, structure=dilate, iterations=config.adjacency_radius)
    classes.sort(key=lambda c: (-c.pixels, BEN19_LABELS.index(c.name)))
    pairs: set[frozenset[str]] = set()
    names = [c.name for c in classes]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if np.any(dilated[a] & masks[b]):
                pairs.add(frozenset((a, b)))
    return PatchAttributes(classes=tuple(c for c in classes if c.instances), adjacency=frozenset(pairs))
