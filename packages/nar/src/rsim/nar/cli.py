"""``nar`` console script: LightningCLI (fit/validate/test/predict/train) plus the package verbs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rsim.core.cli import build_cli
from rsim.nar.experiment import experiment_main

__all__ = ["main"]


def inject_noise_main(argv: list[str]) -> int:
    """Inject class-wise noise into the real BigEarthNet v2 labels of one split and save the matrix."""
    from rsim.core.data import PatchTable, load_metadata
    from rsim.nar.noise import inject_noise

    p = argparse.ArgumentParser(prog="nar inject-noise", description=inject_noise_main.__doc__)
    p.add_argument("metadata", help="BigEarthNet v2 metadata.parquet")
    p.add_argument("out", help="output .npz (noisy, clean, add_rate, sub_rate, seed)")
    p.add_argument("--split", default="train", choices=["train", "validation", "test"])
    p.add_argument("--add-rate", type=float, default=0.0)
    p.add_argument("--sub-rate", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    try:
        table = PatchTable.from_metadata(load_metadata(a.metadata), a.split, source=a.metadata)
        noisy = inject_noise(table.labels, add_rate=a.add_rate, sub_rate=a.sub_rate, seed=a.seed, source=a.metadata)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"nar inject-noise: error: {exc}", file=sys.stderr)
        return 1
    noisy.save(a.out)
    clean_pos, added, removed = noisy.clean.sum(0), noisy.added.sum(0), noisy.removed.sum(0)
    print(
        f"{a.split}: {len(table)} samples, {noisy.noise_type} noise (add {a.add_rate}, sub {a.sub_rate}, seed {a.seed})"
    )
    print(f"entries changed: +{int(added.sum())} / -{int(removed.sum())} of {int(clean_pos.sum())} clean positives")
    print(f"samples left without labels: {int((noisy.noisy.sum(1) == 0).sum())}; wrote {a.out}")
    return 0


def deepglobe_labels_main(argv: list[str]) -> int:
    """Write the DeepGlobe multi-label patch table from the Land Cover release masks (Dask)."""
    from rsim.nar.data.release import write_deepglobe_labels

    p = argparse.ArgumentParser(prog="nar deepglobe-labels", description=deepglobe_labels_main.__doc__)
    p.add_argument("root", help="release folder with train/<id>_mask.png")
    p.add_argument("--out", default=None, help="output CSV (default ROOT/labels_<patch>.csv)")
    p.add_argument("--patch-size", type=int, default=120)
    p.add_argument("--min-fraction", type=float, default=0.0)
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (default: local cluster)")
    p.add_argument("--workers", type=int, default=None)
    a = p.parse_args(argv)
    try:
        out = write_deepglobe_labels(
            a.root,
            a.out,
            patch_size=a.patch_size,
            min_fraction=a.min_fraction,
            scheduler=a.scheduler,
            n_workers=a.workers,
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"nar deepglobe-labels: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


def main(args: Sequence[str] | None = None) -> int:
    """Entry point of the ``nar`` console script."""
    return build_cli(
        prog="nar",
        verbs={
            "experiment": experiment_main,
            "inject-noise": inject_noise_main,
            "deepglobe-labels": deepglobe_labels_main,
        },
        args=args,
    )
