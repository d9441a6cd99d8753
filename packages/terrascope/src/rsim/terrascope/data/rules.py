"""TerraScope-Bench generation rules on label maps (paper Appendix D.2), as pure functions.

* area ``A_c = N_c · r²`` (``r`` = ground sampling distance, 10 m for BigEarthNet);
* coverage ``P_c = N_c / N_valid · 100``, kept when ``P_c >= 5 %``;
* comparative ranking only between kept classes whose areas differ by more than 10 % of the larger one;
* distance = minimum of the Euclidean distance transform of ``M_i`` sampled inside ``M_j`` after a morphological
  opening of both masks, kept when it exceeds 10 px;
* boundary = the 3×3 dilation of ``M_i`` intersects ``M_j``; classes under 3 % coverage or with more than 5
  connected components are skipped;
* building change from xBD-style polygon pairs (rasterised), kept when ``N_total >= 10`` and ``N_destroyed >= 3``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rsim.core.data.nomenclature import UNLABELED, clc_code_to_19, label_names
from rsim.core.errors import DataFormatError
from scipy import ndimage

__all__ = [
    "BuildingChange",
    "ClassStats",
    "borders",
    "boundary_classes",
    "building_change",
    "class_masks",
    "class_stats",
    "comparable_pairs",
    "coverage_classes",
    "min_distance_px",
    "parse_wkt_polygon",
    "rasterize_polygons",
]

_STRUCT_3x3 = np.ones((3, 3), dtype=bool)


def class_masks(reference_map: np.ndarray, *, nodata: int = 0, source: str = "reference map") -> dict[str, np.ndarray]:
    """Split a CLC Level-3 reference map into one bool mask per BigEarthNet 19-class name (CLC label order).

    Nodata and codes mapped to ``UNLABELED`` get no mask; they are not valid pixels either.

    Raises:
        DataFormatError: The map is not 2-D or holds a code that is not in the CLC table.
    """
    if reference_map.ndim != 2:
        raise DataFormatError(f"{source}: expected an (H, W) label map, got shape {reference_map.shape}")
    table = clc_code_to_19()
    codes = [int(c) for c in np.unique(reference_map) if int(c) != nodata]
    unknown = [c for c in codes if c not in table]
    if unknown:
        raise DataFormatError(f"{source}: codes {unknown} are not CLC Level-3 codes of the BigEarthNet table")
    by_name: dict[str, np.ndarray] = {}
    for code in codes:
        name = table[code]
        if name == UNLABELED:
            continue
        hit = reference_map == code
        by_name[name] = by_name[name] | hit if name in by_name else hit
    order = {n: i for i, n in enumerate(label_names("clc"))}
    return dict(sorted(by_name.items(), key=lambda kv: order[kv[0]]))


@dataclass(frozen=True)
class ClassStats:
    """Pixel count, area, coverage and connected components of one class in one image."""

    name: str
    pixels: int
    area_m2: float
    coverage_pct: float
    components: int


def class_stats(masks: Mapping[str, np.ndarray], *, gsd_m: float = 10.0, connectivity: int = 1) -> list[ClassStats]:
    """Statistics of every non-empty class mask.

    Args:
        masks: Class name → bool mask (all the same shape).
        gsd_m: Pixel size ``r`` in metres; ``A_c = N_c · r²``.
        connectivity: 1 = 4-neighbourhood, 2 = 8-neighbourhood for counting components.
    """
    n_valid = int(sum(int(m.sum()) for m in masks.values()))
    structure = ndimage.generate_binary_structure(2, connectivity)
    out: list[ClassStats] = []
    for name, mask in masks.items():
        n = int(mask.sum())
        if n == 0:
            continue
        _, comps = ndimage.label(mask, structure=structure)
        out.append(ClassStats(name, n, n * gsd_m**2, 100.0 * n / n_valid, int(comps)))
    return out


def coverage_classes(stats: Sequence[ClassStats], *, min_coverage_pct: float = 5.0) -> list[ClassStats]:
    """Classes that pass the coverage rule ``P_c >= min_coverage_pct``."""
    return [s for s in stats if s.coverage_pct >= min_coverage_pct]


def comparable_pairs(
    stats: Sequence[ClassStats], *, min_coverage_pct: float = 5.0, min_rel_diff: float = 0.1
) -> list[tuple[ClassStats, ClassStats]]:
    """Pairs of kept classes whose areas differ by more than ``min_rel_diff`` of the larger area."""
    kept = coverage_classes(stats, min_coverage_pct=min_coverage_pct)
    pairs = []
    for i, a in enumerate(kept):
        for b in kept[i + 1 :]:
            if abs(a.area_m2 - b.area_m2) > min_rel_diff * max(a.area_m2, b.area_m2):
                pairs.append((a, b))
    return pairs


def min_distance_px(mask_i: np.ndarray, mask_j: np.ndarray, *, opening: int = 3) -> float | None:
    """Minimum Euclidean distance (px, pixel centres) from ``mask_j`` to ``mask_i`` after an opening of both masks.

    Returns ``None`` when either mask is empty after the opening (``opening`` = side of the square structuring
    element; 1 disables it). Overlapping masks give 0.
    """
    if opening > 1:
        se = np.ones((opening, opening), dtype=bool)
        mask_i = ndimage.binary_opening(mask_i, structure=se)
        mask_j = ndimage.binary_opening(mask_j, structure=se)
    if not mask_i.any() or not mask_j.any():
        return None
    dist = ndimage.distance_transform_edt(~mask_i)
    return float(dist[mask_j].min())


def borders(mask_i: np.ndarray, mask_j: np.ndarray) -> bool:
    """Whether the 3×3 dilation of ``mask_i`` intersects ``mask_j``."""
    return bool((ndimage.binary_dilation(mask_i, structure=_STRUCT_3x3) & mask_j).any())


def boundary_classes(
    stats: Sequence[ClassStats], *, min_coverage_pct: float = 3.0, max_components: int = 5
) -> list[ClassStats]:
    """Classes eligible for boundary questions (coverage >= 3 % and at most 5 components by default)."""
    return [s for s in stats if s.coverage_pct >= min_coverage_pct and s.components <= max_components]


# --- building change (xBD polygons) ------------------------------------------------------------------------

_WKT = re.compile(r"^\s*POLYGON\s*\(\s*\((?P<ring>[^()]*)\)", re.IGNORECASE)


def parse_wkt_polygon(wkt: str, *, source: str = "wkt") -> np.ndarray:
    """Outer ring of a WKT ``POLYGON ((x y, ...))`` as an (N, 2) float array of (x, y) pixel coordinates.

    Raises:
        DataFormatError: The text is not a WKT polygon with at least three vertices.
    """
    match = _WKT.match(wkt)
    if match is None:
        raise DataFormatError(f"{source}: expected a WKT 'POLYGON ((x y, ...))', got {wkt[:60]!r}")
    try:
        pts = np.array([[float(v) for v in p.split()[:2]] for p in match["ring"].split(",")], dtype=np.float64)
    except ValueError as exc:
        raise DataFormatError(f"{source}: non-numeric vertex in {wkt[:60]!r}") from exc
    if pts.ndim != 2 or len(pts) < 3:
        raise DataFormatError(f"{source}: a polygon needs at least 3 vertices, got {len(pts)}")
    return pts


def rasterize_polygons(polygons: Iterable[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Burn pixel-coordinate polygons into a bool mask (a pixel is set when its centre is inside; rasterio)."""
    from rasterio.features import rasterize

    geoms = [{"type": "Polygon", "coordinates": [p.tolist()]} for p in polygons]
    if not geoms:
        return np.zeros(shape, dtype=bool)
    return rasterize(((g, 1) for g in geoms), out_shape=shape, fill=0, dtype="uint8").astype(bool)


@dataclass(frozen=True)
class BuildingChange:
    """Counts and rasterised masks of one xBD pre/post pair."""

    n_total: int
    n_destroyed: int
    n_damaged: int
    pre_mask: np.ndarray
    destroyed_mask: np.ndarray


def _features(label: Mapping[str, Any], source: str) -> list[Mapping[str, Any]]:
    try:
        feats = label["features"]["xy"]
    except (KeyError, TypeError) as exc:
        raise DataFormatError(f"{source}: expected an xBD label with 'features' → 'xy' list") from exc
    if not isinstance(feats, list):
        raise DataFormatError(f"{source}: 'features' → 'xy' must be a list")
    return feats


def building_change(
    pre_label: Mapping[str, Any],
    post_label: Mapping[str, Any],
    shape: tuple[int, int],
    *,
    min_total: int = 10,
    min_destroyed: int = 3,
    source: str = "xBD pair",
) -> BuildingChange | None:
    """Count buildings (pre image) and destroyed/damaged ones (post image, ``properties.subtype``) of an xBD pair.

    Returns ``None`` when the pair fails the rule ``N_total >= min_total and N_destroyed >= min_destroyed``.

    Raises:
        DataFormatError: A label lacks ``features.xy``, a polygon's ``wkt`` or a post ``subtype``.
    """
    pre = _features(pre_label, f"{source} pre")
    post = _features(post_label, f"{source} post")
    pre_polys = [parse_wkt_polygon(_get(f, "wkt", f"{source} pre"), source=f"{source} pre") for f in pre]
    destroyed, damaged = [], 0
    for f in post:
        subtype = _get(f.get("properties", {}), "subtype", f"{source} post properties")
        if subtype == "destroyed":
            destroyed.append(parse_wkt_polygon(_get(f, "wkt", f"{source} post"), source=f"{source} post"))
        elif subtype in ("minor-damage", "major-damage"):
            damaged += 1
    if len(pre_polys) < min_total or len(destroyed) < min_destroyed:
        return None
    return BuildingChange(
        len(pre_polys),
        len(destroyed),
        damaged,
        rasterize_polygons(pre_polys, shape),
        rasterize_polygons(destroyed, shape),
    )


def _get(mapping: Mapping[str, Any], key: str, source: str) -> Any:
    if key not in mapping:
        raise DataFormatError(f"{source}: field {key!r} is missing")
    return mapping[key]
