"""Evaluate restoration models on the Sea-Undistort test split and write a comparison table."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from rsim.core.io import atomic_path
from rsim.sea_undistort.data.datamodule import SeaUndistortDataModule
from rsim.sea_undistort.metrics import RestorationMetrics
from rsim.sea_undistort.tasks import RestorationTask, load_task


@torch.no_grad()
def evaluate_models(
    models: Mapping[str, RestorationTask | None], data: SeaUndistortDataModule, *, split: str = "test",
    device: str | torch.device = "cpu", psnr_channel: str = "y", lpips: bool = True,
) -> tuple[list[dict[str, Any]], str | None]:  # fmt: skip
    """Metrics of each model on ``split`` (eval transforms: centre crop); ``None`` as a model = the input itself.

    Returns:
        Rows ``{"model", "images", "psnr_y", "ssim"[, "lpips"]}`` and the reason LPIPS was skipped (or ``None``).
    """
    loader = {"test": data.test_dataloader, "val": data.val_dataloader, "train": data.train_dataloader}[split]()
    rows: list[dict[str, Any]] = []
    skipped: str | None = None
    for name, task in models.items():
        metrics = RestorationMetrics(psnr_channel, lpips=lpips).to(device)
        skipped = metrics.lpips_skipped_reason
        if task is not None:
            task.to(device).eval()
        count = 0
        for raw in loader:
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in raw.items()}
            batch = data.transform_batch(batch, train=False)
            pred = batch["lq"] if task is None else task.restore(batch["lq"], batch["mask"])
            metrics.update(pred, batch["gt"])
            count += batch["lq"].shape[0]
        if count == 0:
            raise ValueError(f"the {split} split of {data.root} is empty")
        rows.append({"model": name, "images": count, **metrics.compute()})
    return rows, skipped


def format_table(rows: list[dict[str, Any]], lpips_note: str | None) -> str:
    """Markdown table of :func:`evaluate_models` rows."""
    cols = [c for c in ("psnr_y", "psnr", "ssim", "lpips") if any(c in r for r in rows)]
    lines = ["| model | images | " + " | ".join(cols) + " |", "|---|---:|" + "---:|" * len(cols)]
    for r in rows:
        lines.append(f"| {r['model']} | {r['images']} | " + " | ".join(f"{r[c]:.4f}" for c in cols) + " |")
    if lpips_note and lpips_note != "disabled":
        lines.append(f"\nLPIPS skipped: {lpips_note}.")
    return "\n".join(lines) + "\n"


def evaluate_checkpoints(
    root: str | os.PathLike[str], checkpoints: Mapping[str, str | os.PathLike[str]], out: str | os.PathLike[str], *,
    include_input: bool = True, device: str = "cpu", batch_size: int = 4, data_options: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Evaluate checkpoints on the test split; writes ``out`` (Markdown) and ``out`` with ``.json`` (rows)."""
    data = SeaUndistortDataModule(root, batch_size=batch_size, **dict(data_options or {}))
    models: dict[str, RestorationTask | None] = {"input (no restoration)": None} if include_input else {}
    for name, path in checkpoints.items():
        models[name] = load_task(path, device)
    rows, note = evaluate_models(models, data, device=device)
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_text(format_table(rows, note))
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps({"rows": rows, "lpips_skipped": note}, indent=2))
    return rows
