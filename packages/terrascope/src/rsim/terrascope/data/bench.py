"""TerraScope-Bench: template MCQ items from label maps (Appendix D.2 rules) and the released parquet format.

The released file ``TerraScope_bench.parquet`` has the columns ``image`` (struct ``{bytes, path}``), ``question``,
``candidates`` (A–D), ``answer`` (letter) and ``task_type``. Files written here add ``index``, ``patch_id`` and
``gt_masks`` (JSON list of COCO RLEs, one per reasoning mask) so that mask quality can be evaluated; the loader
accepts files with or without them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rsim.core.errors import DataFormatError
from rsim.core.io import atomic_path
from rsim.terrascope.data.masks import decode_rle, encode_rle
from rsim.terrascope.data.rules import (
    BuildingChange,
    borders,
    boundary_classes,
    class_masks,
    class_stats,
    comparable_pairs,
    coverage_classes,
    min_distance_px,
)

LETTERS = "ABCD"
BENCH_COLUMNS = ("image", "question", "candidates", "answer", "task_type")
#: Task names; ``coverage_percentage`` and ``boundary_detection`` are the released names, the others are ours.
TASK_TYPES = (
    "coverage_percentage",
    "absolute_area",
    "comparative_area",
    "boundary_detection",
    "distance_measurement",
    "building_change",
)
TASK_ABBREVIATIONS = {
    "coverage_percentage": "CA",
    "absolute_area": "AQ",
    "comparative_area": "CR",
    "boundary_detection": "BRD",
    "distance_measurement": "DM",
    "building_change": "BCE",
}

__all__ = [
    "BENCH_COLUMNS",
    "LETTERS",
    "TASK_TYPES",
    "BenchConfig",
    "BenchItem",
    "bench_items_from_label_map",
    "building_change_items",
    "format_mcq",
    "load_bench",
    "numeric_options",
    "write_bench",
]


@dataclass(frozen=True)
class BenchConfig:
    """Rules and templates of the bench generator (defaults = paper Appendix D.2).

    Attributes:
        gsd_m: Pixel size ``r`` (m).
        min_coverage_pct: Coverage rule for coverage/area/ranking questions.
        min_rel_area_diff: Ranking only when ``|A_i - A_j| > min_rel_area_diff · max``.
        distance_opening: Side of the opening structuring element before the distance transform.
        min_distance_px: Distance items need ``d > min_distance_px``.
        boundary_min_coverage_pct: Boundary rule: skip classes under this coverage.
        boundary_max_components: Boundary rule: skip classes with more components.
        connectivity: 1 = 4-, 2 = 8-connected components [assumption].
        distractor_gap: Minimum relative gap between any two numeric options [assumption].
        max_items_per_task: Cap of items per task and image (``None`` = all) [assumption].
        seed: Seed of option shuffling and distractors (combined with the image id).
    """

    gsd_m: float = 10.0
    min_coverage_pct: float = 5.0
    min_rel_area_diff: float = 0.1
    distance_opening: int = 3
    min_distance_px: float = 10.0
    boundary_min_coverage_pct: float = 3.0
    boundary_max_components: int = 5
    connectivity: int = 1
    distractor_gap: float = 0.15
    max_items_per_task: int | None = None
    seed: int = 0


@dataclass
class BenchItem:
    """One MCQ item; ``gt_masks`` are the reasoning masks behind the answer (bool (H, W) arrays)."""

    question: str
    candidates: list[str]
    answer: str
    task_type: str
    image: bytes = b""
    image_path: str = ""
    patch_id: str = ""
    gt_masks: list[np.ndarray] = field(default_factory=list)
    index: int = -1

    @property
    def answer_index(self) -> int:
        """Position of the correct option."""
        return LETTERS.index(self.answer)


def format_mcq(question: str, candidates: Sequence[str]) -> str:
    """The prompt text of an item: question, lettered options and the answer instruction."""
    options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(candidates))
    return f"{question}\n{options}\nAnswer with the option's letter from the given choices directly."


def _seed(*parts: object) -> int:
    import zlib

    return zlib.crc32("|".join(map(str, parts)).encode())


def numeric_options(
    value: float,
    rng: np.random.Generator,
    fmt: Callable[[float], str],
    *,
    n_options: int = 4,
    min_gap: float = 0.15,
    upper: float | None = None,
    integer: bool = False,
) -> tuple[list[str], int]:
    """Shuffled options: the formatted ``value`` plus ``n_options - 1`` numeric distractors.

    Distractors are ``value · f`` with ``f`` drawn in [0.3, 2.5], at least ``min_gap`` (relative to the larger) away
    from the value and from each other, capped at ``upper``; formatted strings are all distinct.

    Returns:
        ``(options, index of the correct option)``.
    """
    scale = max(abs(value), 1.0 if integer else 1e-3)
    chosen = [float(value)]
    texts = [fmt(value)]
    for _ in range(2000):
        if len(chosen) == n_options:
            break
        cand = scale * float(rng.uniform(0.3, 2.5)) if value != 0 else scale * float(rng.uniform(0.5, 5.0))
        if integer:
            cand = float(round(cand))
        if upper is not None and cand > upper:
            continue
        if cand < 0 or any(abs(cand - c) <= min_gap * max(abs(cand), abs(c), 1e-9) for c in chosen):
            continue
        text = fmt(cand)
        if text in texts:
            continue
        chosen.append(cand)
        texts.append(text)
    step = 1
    while len(texts) < n_options:  # deterministic fallback for tight ranges
        cand = float(value) + step * max(scale * (min_gap + 0.05), 1.0 if integer else 0.0)
        step += 1
        if upper is not None and cand > upper:
            cand = max(0.0, float(value) - (step - 1) * scale * (min_gap + 0.05))
        if fmt(cand) not in texts:
            chosen.append(cand)
            texts.append(fmt(cand))
        if step > 50:
            raise ValueError(f"cannot build {n_options} distinct options around {value}")
    order = rng.permutation(n_options)
    return [texts[i] for i in order], int(np.flatnonzero(order == 0)[0])


def _cap(items: list[BenchItem], cap: int | None, rng: np.random.Generator) -> list[BenchItem]:
    if cap is None or len(items) <= cap:
        return items
    keep = sorted(rng.choice(len(items), size=cap, replace=False).tolist())
    return [items[i] for i in keep]


def _lc(name: str) -> str:
    return name[0].lower() + name[1:]


def bench_items_from_label_map(
    reference_map: np.ndarray,
    *,
    image: bytes = b"",
    image_path: str = "",
    patch_id: str = "",
    config: BenchConfig | None = None,
) -> list[BenchItem]:
    """All bench items (coverage, area, ranking, boundary, distance) that a CLC reference map supports.

    Args:
        reference_map: (H, W) CLC Level-3 codes, nodata 0.
        image: Encoded image shown with the question.
        image_path: The image's file name stored in ``image.path``.
        patch_id: Source patch (seeds the distractors together with ``config.seed``).
        config: Rules; paper defaults when ``None``.
    """
    cfg = config or BenchConfig()
    source = f"reference map of {patch_id or 'image'}"
    masks = class_masks(reference_map, source=source)
    stats = class_stats(masks, gsd_m=cfg.gsd_m, connectivity=cfg.connectivity)
    common: dict[str, Any] = {"image": image, "image_path": image_path, "patch_id": patch_id}
    out: list[BenchItem] = []
    by_task: dict[str, list[BenchItem]] = {t: [] for t in TASK_TYPES}
    for s in coverage_classes(stats, min_coverage_pct=cfg.min_coverage_pct):
        rng = np.random.default_rng(_seed(cfg.seed, patch_id, "coverage", s.name))
        opts, k = numeric_options(s.coverage_pct, rng, lambda v: f"{v:.1f}%", min_gap=cfg.distractor_gap, upper=100.0)
        by_task["coverage_percentage"].append(
            BenchItem(
                f"What percentage of the image is covered by {_lc(s.name)}?",
                opts,
                LETTERS[k],
                "coverage_percentage",
                gt_masks=[masks[s.name]],
                **common,
            )
        )
        rng = np.random.default_rng(_seed(cfg.seed, patch_id, "area", s.name))
        opts, k = numeric_options(s.area_m2 / 1e4, rng, lambda v: f"{v:.2f} ha", min_gap=cfg.distractor_gap)
        by_task["absolute_area"].append(
            BenchItem(
                f"What is the total area covered by {_lc(s.name)}? Each pixel is {cfg.gsd_m:g} m × {cfg.gsd_m:g} m.",
                opts,
                LETTERS[k],
                "absolute_area",
                gt_masks=[masks[s.name]],
                **common,
            )
        )
    for a, b in comparable_pairs(stats, min_coverage_pct=cfg.min_coverage_pct, min_rel_diff=cfg.min_rel_area_diff):
        rng = np.random.default_rng(_seed(cfg.seed, patch_id, "ranking", a.name, b.name))
        pair = [a, b] if rng.random() < 0.5 else [b, a]
        larger = max(pair, key=lambda s: s.area_m2)
        by_task["comparative_area"].append(
            BenchItem(
                f"Which class covers a larger area in this image: {_lc(pair[0].name)} or {_lc(pair[1].name)}?",
                [pair[0].name, pair[1].name],
                LETTERS[pair.index(larger)],
                "comparative_area",
                gt_masks=[masks[pair[0].name], masks[pair[1].name]],
                **common,
            )
        )
    eligible = boundary_classes(
        stats, min_coverage_pct=cfg.boundary_min_coverage_pct, max_components=cfg.boundary_max_components
    )
    for i, a in enumerate(eligible):
        for b in eligible[i + 1 :]:
            rng = np.random.default_rng(_seed(cfg.seed, patch_id, "boundary", a.name, b.name))
            yes = borders(masks[a.name], masks[b.name])
            opts = ["Yes", "No"] if rng.random() < 0.5 else ["No", "Yes"]
            by_task["boundary_detection"].append(
                BenchItem(
                    f"Does {_lc(a.name)} share a boundary with {_lc(b.name)}?",
                    opts,
                    LETTERS[opts.index("Yes" if yes else "No")],
                    "boundary_detection",
                    gt_masks=[masks[a.name], masks[b.name]],
                    **common,
                )
            )
    for i, a in enumerate(stats):
        for b in stats[i + 1 :]:
            d = min_distance_px(masks[a.name], masks[b.name], opening=cfg.distance_opening)
            if d is None or d <= cfg.min_distance_px:
                continue
            rng = np.random.default_rng(_seed(cfg.seed, patch_id, "distance", a.name, b.name))
            opts, k = numeric_options(d * cfg.gsd_m, rng, lambda v: f"{v:.0f} m", min_gap=cfg.distractor_gap)
            by_task["distance_measurement"].append(
                BenchItem(
                    f"What is the minimum distance between {_lc(a.name)} and {_lc(b.name)}?",
                    opts,
                    LETTERS[k],
                    "distance_measurement",
                    gt_masks=[masks[a.name], masks[b.name]],
                    **common,
                )
            )
    for task in TASK_TYPES:
        rng = np.random.default_rng(_seed(cfg.seed, patch_id, "cap", task))
        out.extend(_cap(by_task[task], cfg.max_items_per_task, rng))
    return out


def building_change_items(
    change: BuildingChange, *, image: bytes = b"", image_path: str = "", patch_id: str = "", seed: int = 0
) -> list[BenchItem]:
    """Building-change items of one xBD pair that passed the rule (count of destroyed buildings)."""
    rng = np.random.default_rng(_seed(seed, patch_id, "building"))
    opts, k = numeric_options(float(change.n_destroyed), rng, lambda v: f"{v:.0f}", integer=True, min_gap=0.1)
    return [
        BenchItem(
            f"Of the {change.n_total} buildings in the pre-disaster image (Image: 1), how many were destroyed in the "
            "post-disaster image (Image: 2)?",
            opts,
            LETTERS[k],
            "building_change",
            image=image,
            image_path=image_path,
            patch_id=patch_id,
            gt_masks=[change.pre_mask, change.destroyed_mask],
        )
    ]


def write_bench(items: Sequence[BenchItem], path: str | os.PathLike[str], *, with_masks: bool = True) -> Path:
    """Write items as a parquet file in the released schema (+ ``index``, ``patch_id``, ``gt_masks``), atomically."""
    rows: dict[str, list[Any]] = {c: [] for c in (*BENCH_COLUMNS, "index", "patch_id")}
    masks_col: list[str] = []
    for i, item in enumerate(items):
        rows["image"].append({"bytes": item.image, "path": item.image_path})
        rows["question"].append(item.question)
        rows["candidates"].append(list(item.candidates))
        rows["answer"].append(item.answer)
        rows["task_type"].append(item.task_type)
        rows["index"].append(i)
        rows["patch_id"].append(item.patch_id)
        masks_col.append(json.dumps([encode_rle(m) for m in item.gt_masks]))
    schema = [
        pa.field("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        pa.field("question", pa.string()),
        pa.field("candidates", pa.list_(pa.string())),
        pa.field("answer", pa.string()),
        pa.field("task_type", pa.string()),
        pa.field("index", pa.int64()),
        pa.field("patch_id", pa.string()),
    ]
    arrays = {k: pa.array(v, type=f.type) for k, v, f in zip(rows, rows.values(), schema, strict=True)}
    if with_masks:
        arrays["gt_masks"] = pa.array(masks_col, type=pa.string())
    table = pa.table(arrays)
    out = Path(path)
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)
    return out


_OPTION_PREFIX = re.compile(r"^\s*\(?([A-D])[.):]\s+")


def _candidates(value: Any, source: str) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{source}: 'candidates' is a string but not a JSON list ({exc})") from exc
    if isinstance(value, dict):
        value = [value[k] for k in sorted(value)]
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, list) or not 2 <= len(value) <= 4:
        raise DataFormatError(f"{source}: 'candidates' must be 2–4 options, got {value!r}")
    return [_OPTION_PREFIX.sub("", str(c)) for c in value]


def load_bench(path: str | os.PathLike[str]) -> list[BenchItem]:
    """Read a TerraScope-Bench parquet (released or generated here).

    Candidates may be a list, a JSON list or a letter → text mapping; a leading ``"A. "``/``"(A) "`` is stripped.

    Raises:
        FileNotFoundError: The file is missing.
        DataFormatError: It is not parquet, lacks a released column, or a row has an invalid answer/candidates.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"TerraScope-Bench file {p} is missing")
    try:
        df = pd.read_parquet(p)
    except Exception as exc:
        raise DataFormatError(f"{p} is not a readable parquet file ({exc})") from exc
    missing = [c for c in BENCH_COLUMNS if c not in df.columns]
    if missing:
        raise DataFormatError(f"{p} lacks column(s) {missing}; expected the TerraScope-Bench schema {BENCH_COLUMNS}")
    items: list[BenchItem] = []
    for i, row in enumerate(df.to_dict("records")):
        src = f"{p} row {i}"
        cands = _candidates(row["candidates"], src)
        answer = str(row["answer"]).strip()
        if answer not in LETTERS[: len(cands)]:
            raise DataFormatError(f"{src}: answer {answer!r} is not one of {list(LETTERS[: len(cands)])}")
        image = row["image"]
        if isinstance(image, dict):
            img_bytes, img_path = image.get("bytes") or b"", image.get("path") or ""
        elif isinstance(image, (bytes, bytearray)):
            img_bytes, img_path = bytes(image), ""
        else:
            raise DataFormatError(f"{src}: 'image' must be a {{bytes, path}} struct or bytes, got {type(image)}")
        masks: list[np.ndarray] = []
        raw = row.get("gt_masks")
        if isinstance(raw, str) and raw:
            try:
                rles = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"{src}: 'gt_masks' is not JSON ({exc})") from exc
            masks = [decode_rle(r, source=f"{src} gt_masks[{k}]") for k, r in enumerate(rles)]
        items.append(
            BenchItem(
                question=str(row["question"]),
                candidates=cands,
                answer=answer,
                task_type=str(row["task_type"]),
                image=bytes(img_bytes),
                image_path=str(img_path),
                patch_id=str(row.get("patch_id") or ""),
                gt_masks=masks,
                index=int(row.get("index", i)),
            )
        )
    return items
