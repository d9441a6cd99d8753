"""Fixture writers: tiny Terra-CoT JSON (with images) and TerraScope-Bench parquet files for tests and demos.

Label maps are random blocks of real CLC Level-3 codes; records and items come from the real generators, so the
fixtures follow the released formats exactly.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rsim.terrascope.data.bench import BenchConfig, BenchItem, bench_items_from_label_map, write_bench
from rsim.terrascope.data.cot import (
    CotConfig,
    CotRecord,
    cot_records_from_label_map,
    refseg_records_from_label_map,
    write_cot,
)
from rsim.terrascope.data.images import encode_png, reference_colors

__all__ = ["CotFixture", "random_label_map", "write_bench_fixture", "write_cot_fixture", "write_xbd_fixture"]

_CODES = (112, 211, 231, 311, 312, 324, 512)


def random_label_map(rng: np.random.Generator, size: int = 48, blocks: int = 4) -> np.ndarray:
    """A (size, size) uint16 CLC map of ``blocks``×``blocks`` rectangular cells, 2–4 distinct codes."""
    codes = rng.choice(_CODES, size=int(rng.integers(2, 5)), replace=False)
    cells = rng.choice(codes, size=(blocks, blocks))
    cells[0, 0], cells[-1, -1] = codes[0], codes[1]
    reps = int(np.ceil(size / blocks))
    return np.kron(cells, np.ones((reps, reps), dtype=np.int64))[:size, :size].astype(np.uint16)


@dataclass(frozen=True)
class CotFixture:
    """Paths of a written Terra-CoT fixture."""

    root: Path
    json_path: Path
    records: list[CotRecord]


def write_cot_fixture(
    root: str | os.PathLike[str],
    *,
    n_images: int = 2,
    size: int = 48,
    kind: str = "cot",
    seed: int = 0,
    config: CotConfig | None = None,
    with_sar: bool = False,
) -> CotFixture:
    """Write ``root/images/*.png`` (+ ``vh/``/``vv/`` with ``with_sar``) and ``root/<kind>.json``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    records: list[CotRecord] = []
    for i in range(n_images):
        ref = random_label_map(rng, size)
        name = f"img_{i:03d}.png"
        colours = reference_colors(ref)
        noisy = np.clip(colours.astype(np.int16) + rng.integers(-20, 21, colours.shape), 0, 255).astype(np.uint8)
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "images" / name).write_bytes(encode_png(noisy))
        if with_sar:
            for pol in ("vh", "vv"):
                (root / pol).mkdir(parents=True, exist_ok=True)
                sar = rng.integers(0, 256, (size, size), dtype=np.uint8)
                (root / pol / name).write_bytes(encode_png(sar))
        make = cot_records_from_label_map if kind == "cot" else refseg_records_from_label_map
        records += make(ref, image=name, record_id=f"img_{i:03d}", config=config)
    path = write_cot(records, root / f"{kind}.json")
    return CotFixture(root, path, records)


def write_bench_fixture(
    path: str | os.PathLike[str], *, n_images: int = 2, size: int = 48, seed: int = 0, config: BenchConfig | None = None
) -> list[BenchItem]:
    """Write a bench parquet from random label maps (CLC colour images); returns the items written."""
    rng = np.random.default_rng(seed)
    cfg = config or BenchConfig(min_distance_px=2.0)
    items: list[BenchItem] = []
    for i in range(n_images):
        ref = random_label_map(rng, size)
        png = encode_png(reference_colors(ref))
        items += bench_items_from_label_map(
            ref, image=png, image_path=f"img_{i:03d}.png", patch_id=f"img_{i:03d}", config=cfg
        )
    write_bench(items, path)
    return items


def write_xbd_fixture(
    root: str | os.PathLike[str],
    *,
    n_pairs: int = 2,
    size: int = 64,
    destroyed: tuple[int, ...] = (4, 1),
    seed: int = 0,
) -> list[str]:
    """Write xBD-style pairs (labels and random images); returns the pair names.

    Each pair has 12 square buildings; in pair ``i`` the first ``destroyed[i % len(destroyed)]`` are destroyed.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n_pairs):
        name = f"hurricane-test_{i:08d}"
        feats: list[dict[str, Any]] = []
        for k in range(12):
            x, y = 4 + 14 * (k % 4), 4 + 14 * (k // 4)
            wkt = f"POLYGON (({x} {y}, {x + 8} {y}, {x + 8} {y + 8}, {x} {y + 8}, {x} {y}))"
            feats.append({"wkt": wkt, "properties": {"feature_type": "building", "uid": f"{i}-{k}"}})
        n_destroyed = destroyed[i % len(destroyed)]
        post: list[dict[str, Any]] = []
        for k, f in enumerate(feats):
            subtype = "destroyed" if k < n_destroyed else "no-damage"
            post.append({"wkt": f["wkt"], "properties": {**f["properties"], "subtype": subtype}})
        for when, xy in (("pre", feats), ("post", post)):
            label = {"features": {"xy": xy}, "metadata": {"width": size, "height": size}}
            (root / "labels" / f"{name}_{when}_disaster.json").write_text(json.dumps(label))
            img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            (root / "images" / f"{name}_{when}_disaster.png").write_bytes(encode_png(img))
        names.append(name)
    return names
