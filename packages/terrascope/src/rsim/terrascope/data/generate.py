"""Dataset-wide generation from a BigEarthNet v2 archive (reference maps), parallel through ``rsim.core.parallel``."""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rsim.core.data.bigearthnet import BigEarthNetV2Tree, find_metadata, load_metadata
from rsim.core.io import atomic_path
from rsim.core.parallel import dask_client, map_with_progress
from rsim.terrascope.data.bench import BenchConfig, BenchItem, bench_items_from_label_map, write_bench
from rsim.terrascope.data.cot import (
    CotConfig,
    CotRecord,
    cot_records_from_label_map,
    refseg_records_from_label_map,
    write_cot,
)
from rsim.terrascope.data.images import RGB_BANDS, ImageSource, encode_png, reference_colors, s2_true_colour, sar_rgb

__all__ = ["GenerationReport", "generate_bench", "generate_cot", "list_reference_patches", "render_patch"]


@dataclass(frozen=True)
class GenerationReport:
    """What a generation run wrote."""

    out: Path
    n_patches: int
    n_items: int
    per_task: dict[str, int]


def list_reference_patches(
    root: str | os.PathLike[str], *, split: str | None = None, limit: int | None = None
) -> list[tuple[str, str]]:
    """``(patch_id, s1_name)`` of every patch with a reference map (filtered by the metadata split when given).

    Without ``metadata.parquet`` under ``root`` the S1 name is empty and ``split`` must be ``None``.
    """
    tree = BigEarthNetV2Tree(root)
    patches = sorted(tree.available_reference_maps())
    s1: dict[str, str] = {}
    try:
        meta_path = find_metadata(root)
    except FileNotFoundError:
        if split is not None:
            raise FileNotFoundError(f"split {split!r} requested but {root} has no metadata.parquet") from None
    else:
        meta = load_metadata(
            meta_path, filter_snow_cloud=False, patch_ids=list(patches), columns=["patch_id", "split", "s1_name"]
        )
        if split is not None:
            keep = set(meta.loc[meta["split"] == split, "patch_id"])
            patches = [p for p in patches if p in keep]
        s1 = dict(zip(meta["patch_id"], meta["s1_name"], strict=True))
    out = [(p, str(s1.get(p, ""))) for p in patches]
    return out[:limit] if limit is not None else out


def render_patch(
    tree: BigEarthNetV2Tree, patch_id: str, reference_map: np.ndarray, image_source: ImageSource
) -> np.ndarray:
    """The uint8 RGB image shown with a patch's questions.

    ``s2_rgb`` = true colour from B04/B03/B02; ``reference_colors`` = the CLC colour map; ``auto`` = true colour
    when the S2 patch exists, else the colour map.

    Raises:
        FileNotFoundError: ``s2_rgb`` was asked for and the S2 patch is missing.
    """
    if image_source == "reference_colors" or (image_source == "auto" and not tree.s2_dir(patch_id).is_dir()):
        return reference_colors(reference_map)
    if image_source not in ("s2_rgb", "auto"):
        raise ValueError(f"unknown image_source {image_source!r}; expected s2_rgb, reference_colors or auto")
    return s2_true_colour(tree.read_s2(patch_id, RGB_BANDS))


def _bench_patch(
    patch: tuple[str, str], *, root: str, config: BenchConfig, image_source: ImageSource
) -> list[BenchItem]:
    tree = BigEarthNetV2Tree(root)
    patch_id = patch[0]
    ref = tree.read_reference_map(patch_id)
    png = encode_png(render_patch(tree, patch_id, ref, image_source))
    return bench_items_from_label_map(ref, image=png, image_path=f"{patch_id}.png", patch_id=patch_id, config=config)


def _cot_patch(
    patch: tuple[str, str],
    *,
    root: str,
    out_dir: str,
    kind: Literal["cot", "refseg"],
    config: CotConfig,
    image_source: ImageSource,
    with_sar: bool,
    sar_db_range: tuple[float, float],
) -> list[CotRecord]:
    tree = BigEarthNetV2Tree(root)
    patch_id, s1_name = patch
    ref = tree.read_reference_map(patch_id)
    name = f"{patch_id}.png"
    _write_png(Path(out_dir) / "images" / name, render_patch(tree, patch_id, ref, image_source))
    if with_sar and s1_name and tree.s1_dir(s1_name).is_dir():
        bands = tree.read_s1(s1_name, ["VH", "VV"])
        sar = sar_rgb(bands["VH"], bands["VV"], db_range=sar_db_range)
        _write_png(Path(out_dir) / "vh" / name, sar[..., 0])
        _write_png(Path(out_dir) / "vv" / name, sar[..., 1])
    make = cot_records_from_label_map if kind == "cot" else refseg_records_from_label_map
    return make(ref, image=name, record_id=patch_id, config=config)


def _write_png(path: Path, image: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(encode_png(image))


def _run(
    fn: Any,
    patches: Sequence[Any],
    description: str,
    client: Any,
    scheduler: str | None,
    n_workers: int | None,
    processes: bool,
    show_progress: bool,
) -> list[Any]:
    if client is not None:
        return map_with_progress(fn, patches, client=client, description=description, show_progress=show_progress)
    with dask_client(scheduler, n_workers, processes=processes) as own:
        return map_with_progress(fn, patches, client=own, description=description, show_progress=show_progress)


def generate_bench(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    split: str | None = None,
    limit: int | None = None,
    config: BenchConfig | None = None,
    image_source: ImageSource = "s2_rgb",
    client: Any = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    processes: bool = True,
    show_progress: bool = True,
) -> GenerationReport:
    """Generate TerraScope-Bench items for every reference map of a BigEarthNet v2 archive and write the parquet.

    Raises:
        ValueError: No patch with a reference map was found.
    """
    patches = list_reference_patches(root, split=split, limit=limit)
    if not patches:
        raise ValueError(f"{root}: no patch with a reference map (Reference_Maps/) for split {split!r}")
    fn = functools.partial(_bench_patch, root=str(root), config=config or BenchConfig(), image_source=image_source)
    results = _run(fn, patches, "bench items", client, scheduler, n_workers, processes, show_progress)
    items = [item for chunk in results for item in chunk]
    path = write_bench(items, out)
    return GenerationReport(path, len(patches), len(items), dict(Counter(i.task_type for i in items)))


def generate_cot(
    root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    kind: Literal["cot", "refseg"] = "cot",
    split: str | None = None,
    limit: int | None = None,
    config: CotConfig | None = None,
    image_source: ImageSource = "s2_rgb",
    with_sar: bool = True,
    sar_db_range: tuple[float, float] = (-30.0, 5.0),
    client: Any = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    processes: bool = True,
    show_progress: bool = True,
) -> GenerationReport:
    """Write ``out_dir/images/*.png`` (+ ``vh/``, ``vv/`` SAR when the S1 partner exists) and the JSON records."""
    patches = list_reference_patches(root, split=split, limit=limit)
    if not patches:
        raise ValueError(f"{root}: no patch with a reference map (Reference_Maps/) for split {split!r}")
    fn = functools.partial(
        _cot_patch,
        root=str(root),
        out_dir=str(out_dir),
        kind=kind,
        config=config or CotConfig(),
        image_source=image_source,
        with_sar=with_sar,
        sar_db_range=sar_db_range,
    )
    results = _run(fn, patches, f"{kind} records", client, scheduler, n_workers, processes, show_progress)
    records = [r for chunk in results for r in chunk]
    path = write_cot(records, Path(out_dir) / f"{'terra_cot' if kind == 'cot' else 'refseg'}.json")
    return GenerationReport(path, len(patches), len(records), dict(Counter(r.template for r in records)))
