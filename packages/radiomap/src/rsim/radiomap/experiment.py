"""``radiomap experiment snda``: clean vs SNDA training on generated rooms, evaluated on noisy inputs.

Trains one small RadioNet per (encoding, training mode) plus a CNN without environment input, then evaluates every
model and the classical baselines on the test rooms with clean inputs and with deterministic perturbed copies at each
severity, for each observation fraction. Writes ``results.csv``, ``results.md`` and one plot per severity.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rsim.core.io import atomic_path
from rsim.core.metrics import MaskedRegressionMetrics
from rsim.radiomap.baselines import BASELINES, evaluate_baselines
from rsim.radiomap.data.datamodule import RadioMapDataModule
from rsim.radiomap.data.layout import PL_RANGE
from rsim.radiomap.generator import GeneratorConfig, generate_dataset, severity_dir
from rsim.radiomap.tasks import RadioMapTask

__all__ = ["SndaExperimentConfig", "run_snda_experiment"]


@dataclass
class SndaExperimentConfig:
    """Settings of the SNDA experiment (the demo values run in a few CPU minutes)."""

    n_rooms: int = 24
    n_copies: int = 4
    severities: tuple[float, ...] = (0.25, 0.5, 1.0)
    train_severity: float = 0.5
    obs_percent: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    encodings: tuple[str, ...] = ("binary", "classes")
    no_env_model: bool = True
    baselines: bool = True
    epochs: int = 6
    width_mult: float = 0.125
    lr: float = 1e-3
    batch_size: int = 8
    obs_max_fraction: float = 0.2
    fspl_channel: bool = True
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _train(dm: RadioMapDataModule, cfg: SndaExperimentConfig, out: Path) -> RadioMapTask:
    from lightning.pytorch import Trainer, seed_everything

    seed_everything(cfg.seed, workers=True)
    task = RadioMapTask(in_channels=dm.num_channels, width_mult=cfg.width_mult, lr=cfg.lr)
    trainer = Trainer(accelerator="cpu", devices=1, max_epochs=cfg.epochs, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                      default_root_dir=out)  # fmt: skip
    trainer.fit(task, dm)
    return task.eval()


def _eval_model(task: RadioMapTask, dm: RadioMapDataModule) -> float:
    metric = MaskedRegressionMetrics()
    with torch.no_grad():
        for raw in dm.test_dataloader():
            b = dm.prepare_batch(raw, training=False)
            pred = task(b["input"])
            metric.update(pred * PL_RANGE, b["target"] * PL_RANGE, b["mask"])
    return float(metric.compute()["rmse"])


def run_snda_experiment(
    out: str | Path, cfg: SndaExperimentConfig | None = None, *, show_progress: bool = True
) -> Path:
    """Run the experiment into ``out``; return the CSV path."""
    cfg = cfg or SndaExperimentConfig()
    out = Path(out)
    data = out / "data"
    gen = GeneratorConfig(n_copies=cfg.n_copies, severities=tuple(sorted({*cfg.severities, cfg.train_severity})),
                          seed=cfg.seed)  # fmt: skip
    t0 = time.perf_counter()
    generate_dataset(data, cfg.n_rooms, gen, processes=False, n_workers=1, show_progress=show_progress)
    t_gen = time.perf_counter() - t0
    train_dir = severity_dir(cfg.train_severity)
    models: dict[tuple[str, str], RadioMapTask] = {}
    runs = [(enc, mode) for enc in cfg.encodings for mode in ("clean", "snda")]
    if cfg.no_env_model:
        runs.append(("none", "clean"))
    t0 = time.perf_counter()
    for enc, mode in runs:
        dm = RadioMapDataModule(str(data), encoding=enc, snda=mode == "snda", copies_dir=train_dir,
                                batch_size=cfg.batch_size, obs_max_fraction=cfg.obs_max_fraction, seed=cfg.seed,
                                fspl_channel=cfg.fspl_channel)  # fmt: skip
        models[(enc, mode)] = _train(dm, cfg, out)
    t_train = time.perf_counter() - t0
    rows: list[dict[str, Any]] = []
    conditions: list[tuple[str, str | None]] = [("clean", None)]
    conditions += [(f"noisy {s:g} m", severity_dir(s)) for s in cfg.severities]
    for cond, copies in conditions:
        for pct in cfg.obs_percent:
            for (enc, mode), task in models.items():
                dm = RadioMapDataModule(str(data), encoding=enc, eval_noisy=copies is not None,
                                        copies_dir=copies or train_dir, batch_size=cfg.batch_size,
                                        eval_obs_fraction=pct / 100.0, seed=cfg.seed,
                                        fspl_channel=cfg.fspl_channel)  # fmt: skip
                name = "CNN (no environment)" if enc == "none" else f"RadioNet {enc} {mode}"
                rows.append({"model": name, "condition": cond, "obs_pct": pct, "rmse_db": _eval_model(task, dm)})
            if cfg.baselines:
                dm = RadioMapDataModule(str(data), encoding="none", eval_noisy=copies is not None,
                                        copies_dir=copies or train_dir, batch_size=cfg.batch_size,
                                        eval_obs_fraction=pct / 100.0, seed=cfg.seed)  # fmt: skip
                batches = (dm.prepare_batch(b, training=False) for b in dm.test_dataloader())
                for name, rmse in evaluate_baselines(batches, BASELINES).items():
                    rows.append({"model": name, "condition": cond, "obs_pct": pct, "rmse_db": rmse})
    n_test = len(RadioMapDataModule(str(data)).splits["test"])
    csv_path = out / "results.csv"
    with atomic_path(csv_path) as tmp, tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["model", "condition", "obs_pct", "rmse_db"])
        w.writeheader()
        w.writerows(rows)
    header = (f"SNDA experiment: {cfg.n_rooms} rooms ({n_test} test Tx maps), {cfg.n_copies} copies per severity, "
              f"width {cfg.width_mult}, {cfg.epochs} epochs; generation {t_gen:.0f} s, "
              f"training {t_train:.0f} s")  # fmt: skip
    _write_markdown(out / "results.md", rows, cfg, header)
    _plot(out, rows, cfg)
    return csv_path


def _write_markdown(path: Path, rows: list[dict[str, Any]], cfg: SndaExperimentConfig, header: str) -> None:
    lines = [f"# {header}", "", "RMSE in dB over all valid cells of the test maps.", ""]
    for cond in dict.fromkeys(r["condition"] for r in rows):
        lines += [f"## input: {cond}", "", "| model | " + " | ".join(f"{p:g} %" for p in cfg.obs_percent) + " |",
                  "|---|" + "---:|" * len(cfg.obs_percent)]  # fmt: skip
        for model in dict.fromkeys(r["model"] for r in rows):
            vals = {r["obs_pct"]: r["rmse_db"] for r in rows if r["model"] == model and r["condition"] == cond}
            lines.append(f"| {model} | " + " | ".join(f"{vals[p]:.2f}" for p in cfg.obs_percent) + " |")
        lines.append("")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))


def _plot(out: Path, rows: list[dict[str, Any]], cfg: SndaExperimentConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for cond in dict.fromkeys(r["condition"] for r in rows):
        fig, ax = plt.subplots(figsize=(6, 4))
        for model in dict.fromkeys(r["model"] for r in rows):
            pts = sorted((r["obs_pct"], r["rmse_db"]) for r in rows if r["model"] == model and r["condition"] == cond)
            ax.plot([p for p, _ in pts], [v for _, v in pts], marker="o", label=model)
        ax.set_xscale("log")
        ax.set_xlabel("observed cells (%)")
        ax.set_ylabel("RMSE (dB)")
        ax.set_title(f"input: {cond}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        name = cond.replace(" ", "_")
        with atomic_path(out / f"rmse_{name}.png") as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
