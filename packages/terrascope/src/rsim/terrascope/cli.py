"""``terrascope`` command line: LightningCLI (fit/train/validate/test/predict) plus data and evaluation verbs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import fields
from typing import Literal

from rsim.core.cli import build_cli

__all__ = ["main"]


def _parallel_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", help="BigEarthNet v2 root (Reference_Maps/, BigEarthNet-S2/, metadata/)")
    parser.add_argument("--split", default=None, choices=["train", "validation", "test"])
    parser.add_argument("--limit", type=int, default=None, help="at most this many patches")
    parser.add_argument(
        "--image-source",
        default="s2_rgb",
        choices=["s2_rgb", "reference_colors", "auto"],
        help="true colour from S2 (default), the CLC colour map, or S2 when present else colours",
    )
    parser.add_argument("--scheduler", default=None, help="Dask scheduler address (default: a local cluster)")
    parser.add_argument("--workers", type=int, default=None, help="local Dask workers")
    parser.add_argument("--threads", action="store_true", help="local cluster of threads instead of processes")
    parser.add_argument("--seed", type=int, default=0)


def generate_bench_main(argv: list[str]) -> int:
    """Generate TerraScope-Bench items (parquet) from BigEarthNet reference maps."""
    from rsim.terrascope.data.bench import BenchConfig
    from rsim.terrascope.data.generate import generate_bench

    parser = argparse.ArgumentParser(prog="terrascope generate-bench", description=generate_bench_main.__doc__)
    _parallel_args(parser)
    parser.add_argument("out", help="output parquet")
    for f in fields(BenchConfig):
        if f.name not in ("seed",):
            kind = int if f.type in ("int", "int | None") else float
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=f.default)
    args = parser.parse_args(argv)
    config = BenchConfig(**{f.name: getattr(args, f.name) for f in fields(BenchConfig)})
    report = generate_bench(
        args.root,
        args.out,
        split=args.split,
        limit=args.limit,
        config=config,
        image_source=args.image_source,
        scheduler=args.scheduler,
        n_workers=args.workers,
        processes=not args.threads,
    )
    per_task = ", ".join(f"{k} {v}" for k, v in sorted(report.per_task.items()))
    print(f"wrote {report.out}: {report.n_items} items from {report.n_patches} patch(es) ({per_task})")
    return 0


def _generate_cot(argv: list[str], kind: Literal["cot", "refseg"]) -> int:
    from rsim.terrascope.data.cot import COT_TEMPLATES, CotConfig
    from rsim.terrascope.data.generate import generate_cot

    parser = argparse.ArgumentParser(prog=f"terrascope generate-{kind}")
    _parallel_args(parser)
    parser.add_argument("out_dir", help="output folder (images/, vh/, vv/ and the JSON)")
    parser.add_argument("--templates", nargs="+", default=list(COT_TEMPLATES), choices=COT_TEMPLATES)
    parser.add_argument("--max-per-template", type=int, default=2)
    parser.add_argument("--no-sar", action="store_true", help="do not write vh/ vv/ renderings of the S1 partner")
    parser.add_argument("--sar-db-range", type=float, nargs=2, default=(-30.0, 5.0))
    args = parser.parse_args(argv)
    config = CotConfig(templates=tuple(args.templates), max_per_template=args.max_per_template, seed=args.seed)
    report = generate_cot(
        args.root,
        args.out_dir,
        kind=kind,
        split=args.split,
        limit=args.limit,
        config=config,
        image_source=args.image_source,
        with_sar=not args.no_sar,
        sar_db_range=tuple(args.sar_db_range),
        scheduler=args.scheduler,
        n_workers=args.workers,
        processes=not args.threads,
    )
    per = ", ".join(f"{k} {v}" for k, v in sorted(report.per_task.items()))
    print(f"wrote {report.out}: {report.n_items} records from {report.n_patches} patch(es) ({per})")
    return 0


def generate_cot_main(argv: list[str]) -> int:
    """Generate Terra-CoT L1 records (JSON + images) from BigEarthNet reference maps."""
    return _generate_cot(argv, "cot")


def generate_refseg_main(argv: list[str]) -> int:
    """Generate stage-1 referring-segmentation records ("Please segment the [class]")."""
    return _generate_cot(argv, "refseg")


def generate_building_change_main(argv: list[str]) -> int:
    """Generate building-change bench items (parquet) from xBD pre/post label pairs."""
    from rsim.terrascope.data.xbd import generate_building_change

    parser = argparse.ArgumentParser(
        prog="terrascope generate-building-change", description=generate_building_change_main.__doc__
    )
    parser.add_argument("root", help="xBD split folder with labels/ (and images/)")
    parser.add_argument("out", help="output parquet")
    parser.add_argument("--min-total", type=int, default=10, help="keep pairs with at least this many buildings")
    parser.add_argument("--min-destroyed", type=int, default=3, help="... and at least this many destroyed")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threads", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    report = generate_building_change(
        args.root,
        args.out,
        min_total=args.min_total,
        min_destroyed=args.min_destroyed,
        seed=args.seed,
        limit=args.limit,
        scheduler=args.scheduler,
        n_workers=args.workers,
        processes=not args.threads,
    )
    print(f"wrote {report.out}: {report.n_items} items from {report.n_patches} pair(s)")
    return 0


def predict_bench_main(argv: list[str]) -> int:
    """Answer TerraScope-Bench items with a model (config + optional checkpoint); writes predictions JSONL."""
    from rsim.terrascope.data.bench import load_bench
    from rsim.terrascope.evaluate import write_predictions
    from rsim.terrascope.predict import load_task, predict_bench

    parser = argparse.ArgumentParser(prog="terrascope predict-bench", description=predict_bench_main.__doc__)
    parser.add_argument("--config", required=True, help="LightningCLI YAML with model.init_args")
    parser.add_argument("--ckpt", default=None, help="Lightning checkpoint (weights)")
    parser.add_argument("--bench", required=True, help="TerraScope-Bench parquet")
    parser.add_argument("--out", required=True, help="predictions JSONL")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--img-size", type=int, default=None, help="default: the config's data.init_args.img_size")
    args = parser.parse_args(argv)
    task, data = load_task(args.config, args.ckpt)
    items = load_bench(args.bench)[: args.limit]
    img_size = args.img_size or int(data.get("img_size", task.model.vision.img_size))
    preds = predict_bench(task, items, img_size=img_size, max_new_tokens=args.max_new_tokens, device=args.device)
    write_predictions(preds, args.out)
    print(f"wrote {args.out}: {len(preds)} predictions")
    return 0


def evaluate_main(argv: list[str]) -> int:
    """Score predictions on TerraScope-Bench: accuracy per task, macro average, mask IoU; writes table and plot."""
    from rsim.terrascope.data.bench import load_bench
    from rsim.terrascope.evaluate import evaluate, load_predictions, write_report

    parser = argparse.ArgumentParser(prog="terrascope evaluate", description=evaluate_main.__doc__)
    parser.add_argument("--bench", required=True, help="TerraScope-Bench parquet")
    parser.add_argument("--predictions", required=True, help="JSONL {index, prediction, masks}")
    parser.add_argument("--out", required=True, help="output folder (results.md, results.json, results.png)")
    parser.add_argument("--parse-from", default="answer_tag", choices=["answer_tag", "full"])
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    report = evaluate(load_bench(args.bench), load_predictions(args.predictions), parse_from=args.parse_from)
    write_report(report, args.out, plot=not args.no_plot)
    print(report.table())
    return 0


def convert_sam2_main(argv: list[str]) -> int:
    """Convert an official sam2(.1)_hiera_*.pt into the Hugging Face folder that `mask_decoder: sam2` loads."""
    from rsim.terrascope.models.convert_sam2 import SAM2_VARIANTS, convert_sam2_checkpoint

    parser = argparse.ArgumentParser(prog="terrascope convert-sam2", description=convert_sam2_main.__doc__)
    parser.add_argument("checkpoint", help="official SAM-2 checkpoint, e.g. sam2.1_hiera_large.pt")
    parser.add_argument("out", help="output folder (config.json + model.safetensors)")
    parser.add_argument("--variant", choices=sorted(SAM2_VARIANTS), help="default: from the file name")
    args = parser.parse_args(argv)
    out = convert_sam2_checkpoint(args.checkpoint, args.out, variant=args.variant)
    print(f"wrote {out}")
    return 0


VERBS = {
    "generate-bench": generate_bench_main,
    "generate-cot": generate_cot_main,
    "generate-refseg": generate_refseg_main,
    "generate-building-change": generate_building_change_main,
    "predict-bench": predict_bench_main,
    "evaluate": evaluate_main,
    "convert-sam2": convert_sam2_main,
}


def main(args: Sequence[str] | None = None) -> int:
    """Entry point of the ``terrascope`` console script."""
    import sys

    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in VERBS:  # data/evaluation verbs do not need torch models or transformers
        return build_cli(prog="terrascope", verbs=VERBS, args=argv)
    from rsim.terrascope.data.datamodule import TerraCotDataModule
    from rsim.terrascope.tasks import TerraScopeTask

    return build_cli(
        prog="terrascope",
        model_class=TerraScopeTask,
        datamodule_class=TerraCotDataModule,
        verbs=VERBS,
        args=list(args) if args is not None else None,
    )
