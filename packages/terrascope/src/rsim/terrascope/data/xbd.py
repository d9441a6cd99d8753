"""Building-change bench items from xBD pre/post pairs (``labels/<name>_{pre,post}_disaster.json`` + ``images/``).

xBD labels hold building polygons as WKT in pixel coordinates under ``features.xy``; post-disaster polygons carry
``properties.subtype`` (``no-damage``, ``minor-damage``, ``major-damage``, ``destroyed``). The two frames are
stored side by side in one PNG (pre | post) because the bench parquet has one image per item [assumption].
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from rsim.core.errors import DataFormatError
from rsim.terrascope.data.bench import BenchItem, building_change_items, write_bench
from rsim.terrascope.data.generate import GenerationReport, _run
from rsim.terrascope.data.images import decode_png, encode_png
from rsim.terrascope.data.rules import building_change

__all__ = ["generate_building_change", "list_xbd_pairs", "xbd_pair_items"]


def list_xbd_pairs(root: str | os.PathLike[str]) -> list[str]:
    """Names ``<disaster>_<id>`` that have both a pre- and a post-disaster label file under ``root/labels``.

    Raises:
        FileNotFoundError: ``root/labels`` does not exist.
    """
    labels = Path(root) / "labels"
    if not labels.is_dir():
        raise FileNotFoundError(f"xBD root {root} has no labels/ folder")
    pre = {p.name[: -len("_pre_disaster.json")] for p in labels.glob("*_pre_disaster.json")}
    post = {p.name[: -len("_post_disaster.json")] for p in labels.glob("*_post_disaster.json")}
    return sorted(pre & post)


def _label(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"xBD label {path} is missing")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DataFormatError(f"{path}: expected a JSON object with 'features'")
    return data


def xbd_pair_items(
    name: str, *, root: str, min_total: int = 10, min_destroyed: int = 3, seed: int = 0, size: int = 1024
) -> list[BenchItem]:
    """Items of one pair (empty when it fails ``N_total >= min_total`` and ``N_destroyed >= min_destroyed``).

    Images are read from ``images/<name>_{pre,post}_disaster.png`` when present; the raster size is taken from
    them (else ``size``).
    """
    base = Path(root)
    pre = _label(base / "labels" / f"{name}_pre_disaster.json")
    post = _label(base / "labels" / f"{name}_post_disaster.json")
    frames = []
    for when in ("pre", "post"):
        path = base / "images" / f"{name}_{when}_disaster.png"
        if path.is_file():
            frames.append(decode_png(path.read_bytes(), source=str(path)))
    if frames and (len(frames) != 2 or frames[0].shape != frames[1].shape):
        raise DataFormatError(f"xBD pair {name}: need both pre and post images of equal size under {base / 'images'}")
    shape = frames[0].shape[:2] if frames else (size, size)
    change = building_change(
        pre,
        post,
        (int(shape[0]), int(shape[1])),
        min_total=min_total,
        min_destroyed=min_destroyed,
        source=f"xBD pair {name}",
    )
    if change is None:
        return []
    image = encode_png(np.concatenate(frames, axis=1)) if frames else b""
    return building_change_items(change, image=image, image_path=f"{name}_pre|post.png", patch_id=name, seed=seed)


def generate_building_change(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    min_total: int = 10,
    min_destroyed: int = 3,
    seed: int = 0,
    limit: int | None = None,
    client: Any = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    processes: bool = True,
    show_progress: bool = True,
) -> GenerationReport:
    """Building-change items for every xBD pair under ``root`` (Dask), written as a bench parquet.

    Raises:
        ValueError: No pair was found.
    """
    names = list_xbd_pairs(root)[:limit]
    if not names:
        raise ValueError(f"{root}: no xBD pre/post label pair under labels/")
    fn = functools.partial(xbd_pair_items, root=str(root), min_total=min_total, min_destroyed=min_destroyed, seed=seed)
    results = _run(fn, names, "xBD pairs", client, scheduler, n_workers, processes, show_progress)
    items = [i for chunk in results for i in chunk]
    path = write_bench(items, out)
    return GenerationReport(path, len(names), len(items), dict(Counter(i.task_type for i in items)))
