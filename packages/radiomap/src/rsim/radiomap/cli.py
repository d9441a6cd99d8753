"""``radiomap`` console script: LightningCLI (fit/validate/test/predict/train) plus the package verbs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rsim.core.cli import build_cli

__all__ = ["main"]


def generate_main(argv: list[str]) -> int:
    """Generate rooms in the RML_indoor layout (multi-wall path loss, perturbed copies; Dask, resumable)."""
    from rsim.radiomap.generator import GeneratorConfig, generate_dataset

    p = argparse.ArgumentParser(prog="radiomap generate", description=generate_main.__doc__)
    p.add_argument("out", help="output folder (rerun the same command to resume)")
    p.add_argument("--rooms", type=int, required=True)
    p.add_argument("--copies", type=int, default=10, help="perturbed copies per room and severity (0: none)")
    p.add_argument("--severities", type=float, nargs="+", default=[0.25, 0.5, 1.0], help="perturbation radii (m)")
    p.add_argument("--properties", action="store_true", help="also write conductivity/permittivity/thickness PNGs")
    p.add_argument("--perturb-materials", action="store_true", help="re-sample materials in the copies")
    p.add_argument("--split-by", choices=["env", "pair"], default="env")
    p.add_argument(
        "--backend",
        choices=["multiwall", "sionna"],
        default="multiwall",
        help="path-loss model: built-in multi-wall model or Sionna RT (optional install: sionna-rt)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="local Dask workers (default: one per core)")
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    p.add_argument("--threads", action="store_true", help="local cluster with threads instead of worker processes")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    cfg = GeneratorConfig(n_copies=a.copies, severities=tuple(a.severities), write_properties=a.properties,
                          perturb_materials=a.perturb_materials, split_by=a.split_by, seed=a.seed,
                          backend=a.backend)  # fmt: skip
    try:
        n = generate_dataset(
            a.out,
            a.rooms,
            cfg,
            scheduler=a.scheduler,
            n_workers=a.workers,
            processes=not a.threads,
            show_progress=not a.no_progress,
        )
    except ValueError as exc:
        print(f"radiomap generate: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {n} rooms ({a.rooms - n} already present) to {a.out}")
    return 0


def import_weights_main(argv: list[str]) -> int:
    """Convert an RML_indoor RadioNet256to32 checkpoint (.pt/.pth, with or without 'model.') to .safetensors."""
    from rsim.radiomap.models.convert import convert_checkpoint

    p = argparse.ArgumentParser(prog="radiomap import-weights", description=import_weights_main.__doc__)
    p.add_argument("src")
    p.add_argument("dst")
    a = p.parse_args(argv)
    try:
        info = convert_checkpoint(a.src, a.dst)
    except (FileNotFoundError, ValueError) as exc:
        print(f"radiomap import-weights: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {a.dst} (RadioNet256to32, inputs={info['inputs']})")
    return 0


def baselines_main(argv: list[str]) -> int:
    """Evaluate the classical baselines on a dataset split (RMSE in dB)."""
    from rsim.radiomap.baselines import BASELINES, evaluate_baselines
    from rsim.radiomap.data.datamodule import RadioMapDataModule

    p = argparse.ArgumentParser(prog="radiomap baselines", description=baselines_main.__doc__)
    p.add_argument("root")
    p.add_argument("--obs-percent", type=float, default=5.0)
    p.add_argument("--noisy", default=None, help="evaluate with copies from perturbed/<NOISY> (e.g. sev0.5)")
    a = p.parse_args(argv)
    dm = RadioMapDataModule(a.root, encoding="none", eval_noisy=a.noisy is not None,
                            copies_dir=a.noisy or "sev0.5", eval_obs_fraction=a.obs_percent / 100)  # fmt: skip
    res = evaluate_baselines((dm.prepare_batch(b, training=False) for b in dm.test_dataloader()), BASELINES)
    for name, rmse in res.items():
        print(f"{name:<18} {rmse:6.2f} dB")
    return 0


def experiment_main(argv: list[str]) -> int:
    """Run an experiment: `snda` (clean vs SNDA training, noisy evaluation, baselines)."""
    from rsim.radiomap.experiment import SndaExperimentConfig, run_snda_experiment

    p = argparse.ArgumentParser(prog="radiomap experiment", description=experiment_main.__doc__)
    p.add_argument("name", choices=["snda"])
    p.add_argument("--out", required=True)
    p.add_argument("--config", default=None, help="YAML with SndaExperimentConfig fields (e.g. configs/demo.yaml)")
    p.add_argument("--rooms", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    a = p.parse_args(argv)
    fields: dict[str, Any] = {}
    if a.config:
        import yaml

        doc = yaml.safe_load(open(a.config)) or {}
        fields = dict(doc.get("experiment", doc))
    if a.rooms is not None:
        fields["n_rooms"] = a.rooms
    if a.epochs is not None:
        fields["epochs"] = a.epochs
    for key in ("severities", "obs_percent", "encodings"):
        if key in fields:
            fields[key] = tuple(fields[key])
    try:
        cfg = SndaExperimentConfig(**fields)
    except TypeError as exc:
        print(f"radiomap experiment: error: {a.config}: {exc}", file=sys.stderr)
        return 1
    csv_path = run_snda_experiment(a.out, cfg)
    print((csv_path.parent / "results.md").read_text())
    print(f"wrote {csv_path}, results.md and rmse_*.png in {csv_path.parent}")
    return 0


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``radiomap`` console script."""
    return build_cli(prog="radiomap", verbs={"generate": generate_main, "import-weights": import_weights_main,
                                             "baselines": baselines_main, "experiment": experiment_main},
                     args=args)  # fmt: skip
