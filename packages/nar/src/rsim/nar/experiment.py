"""``nar experiment``: sweep noise type × rate × method, write a CSV, a markdown table and a plot.

Each run draws the noise once on the training split (seeded), trains with a real validation split for model
selection (best validation macro AP), and reports the test metrics of that checkpoint.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from lightning.pytorch import LightningDataModule, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from rsim.core.io import atomic_path
from rsim.nar.data.bigearthnet import NoisyBigEarthNetDataModule
from rsim.nar.data.synthetic import SyntheticMultiLabelDataModule
from rsim.nar.noise import noise_type, validate_rate
from rsim.nar.plots import plot_sweep
from rsim.nar.tasks import METHODS, NoisyLabelTask

__all__ = ["ExperimentConfig", "experiment_main", "markdown_table", "run_experiment"]

METRICS = ("test/map_macro", "test/map_micro", "test/f1_macro", "test/f1_micro")
DATASETS = ("synthetic", "benv1")


@dataclass
class ExperimentConfig:
    """Options of a sweep (see ``nar experiment --help``)."""

    out: Path
    datasets: Sequence[str] = ("synthetic",)
    methods: Sequence[str] = ("bce", "elr", "nar_elr")
    noise: Sequence[tuple[float, float]] = ((0.0, 0.4), (0.4, 0.4))
    epochs: int = 15
    seed: int = 0
    synthetic_samples: int = 2000
    batch_size: int = 64
    img_size: int = 24
    backbone: str = "test_resnet"  # timm's tiny ResNet: CPU minutes; the paper recipe (configs/) uses resnet18
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    warmup_steps: int | None = 20
    ben_root: str = "shared/data/benv1-examples"
    ben_metadata: str = "shared/data/benv2/metadata/metadata.parquet"
    accelerator: str = "auto"
    jobs: int = 1
    scheduler: str | None = None
    task_overrides: dict[str, Any] = field(default_factory=dict)


def _datamodule(name: str, cfg: ExperimentConfig, add: float, sub: float, run_dir: Path) -> LightningDataModule:
    noise: dict[str, Any] = {
        "add_rate": add,
        "sub_rate": sub,
        "noise_seed": cfg.seed,
        "noise_file": str(run_dir / "noisy_labels.npz"),
    }
    if name == "synthetic":
        return SyntheticMultiLabelDataModule(
            num_samples=cfg.synthetic_samples,
            image_size=cfg.img_size,
            img_size=cfg.img_size,
            batch_size=cfg.batch_size,
            data_seed=cfg.seed,
            **noise,
        )
    if name == "benv1":
        return NoisyBigEarthNetDataModule(
            root=cfg.ben_root,
            version=1,
            metadata=cfg.ben_metadata,
            bands="S2",
            img_size=cfg.img_size,
            augment=False,  # [code] upstream default: no augmentation
            batch_size=cfg.batch_size,
            num_workers=0,
            persistent_workers=False,
            **noise,
        )
    raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")


def run_one(dataset: str, method: str, add: float, sub: float, cfg: ExperimentConfig) -> dict[str, Any]:
    """Train and test one (dataset, noise, method) combination; return a result row."""
    run_dir = cfg.out / "runs" / f"{dataset}_{noise_type(add, sub)}_a{add:g}_s{sub:g}_{method}"
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed, workers=True, verbose=False)
    dm = _datamodule(dataset, cfg, add, sub, run_dir)
    dm.setup("fit")
    channels = getattr(dm, "num_channels", 3)
    num_classes = len(getattr(dm, "class_names", None) or dm.label_names)  # type: ignore[attr-defined]
    kwargs: dict[str, Any] = {
        "method": method,
        "backbone": cfg.backbone,
        "backbone_kwargs": cfg.backbone_kwargs,
        "in_channels": channels,
        "num_classes": num_classes,
        "warmup_steps": cfg.warmup_steps,
        **cfg.task_overrides,
    }
    model = NoisyLabelTask(**kwargs)
    checkpoint = ModelCheckpoint(dirpath=run_dir, monitor="val/map_macro", mode="max", save_top_k=1, save_last=False)
    trainer = Trainer(
        max_epochs=cfg.epochs,
        accelerator=cfg.accelerator,
        devices=1,
        logger=False,
        default_root_dir=run_dir,
        callbacks=[checkpoint],
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    elapsed = time.perf_counter() - start
    best_path = checkpoint.best_model_path
    metrics = trainer.test(model, datamodule=dm, ckpt_path=best_path or None, verbose=False)[0]
    row: dict[str, Any] = {
        "dataset": dataset,
        "noise": noise_type(add, sub),
        "add_rate": add,
        "sub_rate": sub,
        "method": method,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "best_epoch": int(Path(best_path).stem.split("epoch=")[1].split("-")[0]) if "epoch=" in best_path else -1,
        "fit_seconds": round(elapsed, 1),
        **{k: float(metrics[k]) for k in METRICS if k in metrics},
    }
    if model.correction_history:
        last = model.correction_history[-1]
        row.update({f"nar_{k}": last[k] for k in ("handled_precision", "handled_recall", "label_error")})
    return row


def _run_spec(spec: tuple[str, str, float, float], cfg: ExperimentConfig) -> dict[str, Any]:
    if cfg.jobs > 1:
        import torch

        torch.set_num_threads(1)
    dataset, method, add, sub = spec
    return run_one(dataset, method, add, sub, cfg)


def markdown_table(results: pd.DataFrame, metric: str = "test/map_macro") -> str:
    """A markdown table: one row per (dataset, noise, rates), one column per method, ``metric`` × 100."""
    table = results.pivot_table(
        index=["dataset", "noise", "add_rate", "sub_rate"], columns="method", values=metric, sort=False
    )
    methods = list(table.columns)
    lines = [
        f"| dataset | noise | add | sub | {' | '.join(methods)} |",
        "|---|---|---|---|" + "---|" * len(methods),
    ]
    for key, row in table.iterrows():
        parts: tuple[Any, ...] = tuple(key)  # type: ignore[arg-type]
        dataset, noise, add, sub = str(parts[0]), str(parts[1]), float(parts[2]), float(parts[3])
        best = row.max()
        cells = [f"**{v * 100:.2f}**" if v == best else f"{v * 100:.2f}" for v in row]
        lines.append(f"| {dataset} | {noise} | {add:g} | {sub:g} | {' | '.join(cells)} |")
    return "\n".join(lines) + f"\n\n{metric} × 100 on the test split (checkpoint of the best validation macro AP).\n"


def run_experiment(cfg: ExperimentConfig) -> pd.DataFrame:
    """Run the whole sweep and write ``results.csv``, ``results.md`` and ``results.png`` under ``cfg.out``."""
    for method in cfg.methods:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; expected some of {METHODS}")
    for add, sub in cfg.noise:
        validate_rate("add_rate", add)
        validate_rate("sub_rate", sub)
    cfg.out.mkdir(parents=True, exist_ok=True)
    specs = [(d, m, a, s) for d in cfg.datasets for a, s in cfg.noise for m in cfg.methods]
    if cfg.jobs > 1 or cfg.scheduler is not None:  # independent runs on a Dask cluster (one torch thread each)
        from rsim.core.parallel import dask_client, map_with_progress

        with dask_client(cfg.scheduler, n_workers=cfg.jobs) as client:
            rows = map_with_progress(lambda spec: _run_spec(spec, cfg), specs, client=client, description="runs")
    else:
        rows = [_run_spec(spec, cfg) for spec in specs]
    for row in rows:
        print(
            f"{row['dataset']:10s} {row['noise']:12s} a={row['add_rate']:g} s={row['sub_rate']:g} "
            f"{row['method']:8s} mAP_macro={row.get('test/map_macro', float('nan')) * 100:6.2f} "
            f"({row['fit_seconds']} s)",
            flush=True,
        )
    results = pd.DataFrame(rows)
    with atomic_path(cfg.out / "results.csv") as tmp:
        results.to_csv(tmp, index=False)
    text = markdown_table(results)
    with atomic_path(cfg.out / "results.md") as tmp:
        tmp.write_text(text)
    plot_sweep(results, cfg.out / "results.png")
    return results


def _parse_noise(spec: str) -> tuple[float, float]:
    try:
        add, sub = (float(v) for v in spec.split(":"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"noise setting {spec!r} must be ADD:SUB, e.g. 0:0.4 or 0.4:0.4") from exc
    try:
        return validate_rate("add_rate", add), validate_rate("sub_rate", sub)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def experiment_main(argv: list[str]) -> int:
    """Sweep noise type x rate x method; write results.csv, results.md and results.png."""
    p = argparse.ArgumentParser(prog="nar experiment", description=experiment_main.__doc__)
    p.add_argument("--out", default="runs/nar_experiment", help="output folder")
    p.add_argument("--datasets", nargs="+", default=["synthetic"], choices=DATASETS)
    p.add_argument("--methods", nargs="+", default=["bce", "elr", "nar_elr"], choices=METHODS)
    p.add_argument("--noise", nargs="+", type=_parse_noise, default=[(0.0, 0.4), (0.4, 0.4)], help="ADD:SUB rate pairs")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--backbone", default="test_resnet", help="timm model (paper: resnet18)")
    p.add_argument("--warmup-steps", type=int, default=20, help="-1 = the original rule (10,000 or 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--synthetic-samples", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--img-size", type=int, default=24)
    p.add_argument("--ben-root", default="shared/data/benv1-examples")
    p.add_argument("--ben-metadata", default="shared/data/benv2/metadata/metadata.parquet")
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--jobs", type=int, default=1, help="parallel runs on a local Dask cluster")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (runs go to that cluster)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="task overrides, e.g. p2_one=cw")
    a = p.parse_args(argv)
    overrides: dict[str, Any] = {}
    for item in a.set:
        key, _, value = item.partition("=")
        try:
            overrides[key] = float(value) if value.replace(".", "", 1).isdigit() else value
        except ValueError:
            overrides[key] = value
    cfg = ExperimentConfig(
        out=Path(a.out),
        datasets=a.datasets,
        methods=a.methods,
        noise=a.noise,
        epochs=a.epochs,
        backbone=a.backbone,
        warmup_steps=None if a.warmup_steps < 0 else a.warmup_steps,
        seed=a.seed,
        synthetic_samples=a.synthetic_samples,
        batch_size=a.batch_size,
        img_size=a.img_size,
        ben_root=a.ben_root,
        ben_metadata=a.ben_metadata,
        accelerator=a.accelerator,
        jobs=a.jobs,
        scheduler=a.scheduler,
        task_overrides=overrides,
    )
    try:
        run_experiment(cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"nar experiment: error: {exc}")
        return 1
    print(f"wrote {cfg.out / 'results.csv'}, {cfg.out / 'results.md'}, {cfg.out / 'results.png'}")
    print((cfg.out / "results.md").read_text())
    return 0
