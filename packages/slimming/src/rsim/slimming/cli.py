"""``slimming`` command line: LightningCLI (``train``/``fit`` of :class:`SlimmableTask`) plus package verbs."""

from __future__ import annotations

import argparse

from lightning.pytorch import LightningDataModule
from rsim.core.cli import build_cli
from rsim.slimming.sweep import sweep_main
from rsim.slimming.tasks import SlimmableTask

__all__ = ["main"]


def make_eurosat_main(argv: list[str]) -> int:
    """Write a EuroSAT-MS-format fixture folder (13-band GeoTIFFs, one sub-folder per class)."""
    from rsim.slimming.data.testing import write_eurosat_fixture

    p = argparse.ArgumentParser(prog="slimming make-eurosat", description=make_eurosat_main.__doc__)
    p.add_argument("out")
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--per-class", type=int, default=12)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    root = write_eurosat_fixture(a.out, a.classes, a.per_class, a.size, a.seed)
    print(f"wrote {a.classes * a.per_class} EuroSAT-format GeoTIFFs under {root}")
    return 0


def make_benv2_main(argv: list[str]) -> int:
    """Write a generated reBEN (BigEarthNet v2) tree with metadata.parquet (rsim.core.testing fixture)."""
    from rsim.core.testing import write_benv2_fixture

    p = argparse.ArgumentParser(prog="slimming make-benv2", description=make_benv2_main.__doc__)
    p.add_argument("out")
    p.add_argument("--train", type=int, default=24)
    p.add_argument("--validation", type=int, default=4)
    p.add_argument("--test", type=int, default=16)
    a = p.parse_args(argv)
    fx = write_benv2_fixture(a.out, splits={"train": a.train, "validation": a.validation, "test": a.test})
    print(f"wrote {a.train + a.validation + a.test} reBEN patches under {fx.root} (metadata: {fx.metadata_path})")
    return 0


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``slimming`` console script."""
    return build_cli(
        prog="slimming",
        model_class=SlimmableTask,
        datamodule_class=LightningDataModule,
        verbs={"sweep": sweep_main, "make-eurosat": make_eurosat_main, "make-benv2": make_benv2_main},
        args=args,
    )
