"""Diagnostics files: the per-epoch correction history (CSV + plot) and the sweep plot."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from rsim.core.io import atomic_path

__all__ = ["plot_correction_history", "plot_sweep", "write_history_csv"]

CURVES = (("flip1", "0→1 flips"), ("flip0", "1→0 flips"), ("deact", "deactivations"), ("handled", "all handled"))


def write_history_csv(history: Sequence[dict[str, float]], path: str | os.PathLike[str]) -> Path:
    """Write one row per epoch (atomically)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        pd.DataFrame(list(history)).to_csv(tmp, index=False)
    return path


def _figure(ncols: int, width: float = 4.5) -> tuple[object, object]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width * ncols, 3.6), squeeze=False)


def _save(fig: object, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=110, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return path


def plot_correction_history(
    history: Sequence[dict[str, float]], path: str | os.PathLike[str], *, title: str = "NAR"
) -> Path:
    """Plot precision and recall of flips/deactivations against the true noise, and the label error, per epoch."""
    if not history:
        raise ValueError("the correction history is empty: nothing to plot")
    frame = pd.DataFrame(list(history))
    fig, axes = _figure(3)
    epochs = frame["epoch"] + 1
    for ax, kind in zip(axes[0][:2], ("precision", "recall"), strict=True):  # type: ignore[index]
        for key, label in CURVES:
            column = f"{key}_{kind}"
            if column in frame and frame[column].notna().any():
                ax.plot(epochs, frame[column], marker="o", label=label)
        ax.set(title=f"{title}: {kind} vs true noise", xlabel="epoch", ylim=(-0.02, 1.02))
        if ax.get_lines():
            ax.legend(fontsize=7)
    ax = axes[0][2]  # type: ignore[index]
    ax.plot(epochs, frame["label_error"], marker="o", color="black", label="active-label error")
    ax.set(title="label error of active entries", xlabel="epoch")
    ax.legend(fontsize=7)
    return _save(fig, Path(path))


def plot_sweep(results: pd.DataFrame, path: str | os.PathLike[str], metric: str = "test/map_macro") -> Path:
    """Grouped bars: ``metric`` per method for every (dataset, noise) setting."""
    if results.empty:
        raise ValueError("no experiment results to plot")
    datasets = list(dict.fromkeys(results["dataset"]))
    fig, axes = _figure(len(datasets), width=6.0)
    for ax, dataset in zip(axes[0], datasets, strict=True):  # type: ignore[index]
        table = results[results["dataset"] == dataset].pivot_table(index="noise", columns="method", values=metric)
        table.plot.bar(ax=ax, rot=0)
        ax.set(title=dataset, ylabel=metric, xlabel="")
        ax.legend(fontsize=7)
    return _save(fig, Path(path))
