"""``slimming sweep``: post-hoc slimming at every width, frozen features, probes, relative accuracy vs FLOPs."""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rsim.core.data.stats import band_stats
from rsim.core.io import atomic_path
from rsim.slimming.analysis import analyse_features
from rsim.slimming.data.eurosat import EUROSAT_BANDS, EuroSATFolder, split_indices
from rsim.slimming.flops import measure_flops
from rsim.slimming.models.foundation import encode, input_channels, load_encoder
from rsim.slimming.probes import evaluate, knn_scores, linear_probe_scores
from rsim.slimming.slim import PAPER_WIDTHS, AttnScale, SlimMode, SlimOrder, slim
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset

__all__ = ["FeatureSet", "accuracy_at_budget", "bigearthnet_set", "eurosat_set", "run_sweep", "sweep_main"]


@dataclass
class FeatureSet:
    """An evaluation dataset: device-ready image batches of the train and test split, and their labels."""

    name: str
    multilabel: bool
    num_classes: int
    train: list[tuple[Tensor, Tensor]]
    test: list[tuple[Tensor, Tensor]]


def eurosat_set(
    root: str, img_size: int, divisor: float = 10000.0, bands: Sequence[int] | None = None,
    test_fraction: float = 0.2, batch_size: int = 64, seed: int = 0, normalization: str | None = None,
) -> FeatureSet:  # fmt: skip
    """EuroSAT-format folder: band subset, values / ``divisor`` or standardised, bilinear resize to ``img_size``.

    ``normalization`` names an ``rsim.core.data.stats`` table used instead of the divisor.
    """
    ds = EuroSATFolder(root)
    names = [EUROSAT_BANDS[i] for i in bands] if bands is not None else list(EUROSAT_BANDS)
    stats = band_stats(normalization, names) if normalization else None
    tr, te = split_indices(ds.labels, test_fraction, seed)

    def batches(idx: np.ndarray) -> list[tuple[Tensor, Tensor]]:
        out = []
        for b in DataLoader(Subset(ds, idx.tolist()), batch_size=batch_size):
            x = b["image"]
            if bands is not None:
                x = x[:, list(bands)]
            x = (x - stats[0].view(1, -1, 1, 1)) / stats[1].view(1, -1, 1, 1) if stats else x / divisor
            x = F.interpolate(x, size=(img_size, img_size), mode="bilinear", align_corners=False)
            out.append((x, b["label"]))
        return out

    return FeatureSet(f"eurosat:{Path(root).name}", False, len(ds.classes), batches(tr), batches(te))


def bigearthnet_set(
    root: str, version: int, metadata: str | None, bands: str, img_size: int,
    train_split: str = "train", test_split: str = "test", batch_size: int = 32,
    normalization: str | None = "benv2_train_120_bilinear",
) -> FeatureSet:  # fmt: skip
    """BigEarthNet through ``rsim.core.data.BigEarthNetDataModule`` (no augmentation), 19 labels, macro mAP."""
    from rsim.core.data import BigEarthNetDataModule

    dm = BigEarthNetDataModule(
        root=root, version=version, metadata=metadata, bands=bands, img_size=img_size, augment=False,  # type: ignore[arg-type]
        normalization=normalization, batch_size=batch_size, num_workers=0, persistent_workers=False,
        limit_to_available=version == 2,
    )  # fmt: skip
    loaders = {"train": dm.train_dataloader, "validation": dm.val_dataloader, "test": dm.test_dataloader}

    def batches(split: str) -> list[tuple[Tensor, Tensor]]:
        dm.setup({"train": "fit", "validation": "validate", "test": "test"}[split])
        return [(t["image"], t["label"]) for t in (dm.transform_batch(b, train=False) for b in loaders[split]())]

    return FeatureSet(f"bigearthnet_v{version}", True, dm.num_classes, batches(train_split), batches(test_split))


@torch.no_grad()
def _features(model: nn.Module, batches: list[tuple[Tensor, Tensor]], device: torch.device) -> tuple[Tensor, Tensor]:
    feats, labels = [], []
    for x, y in batches:
        feats.append(encode(model, x.to(device)).float())
        labels.append(y.to(device))
    return torch.cat(feats), torch.cat(labels)


def accuracy_at_budget(rel_flops: Sequence[float], rel_acc: Sequence[float], budget: float = 0.01) -> float:
    """Relative accuracy at a relative-FLOPs budget, interpolated linearly in log-FLOPs.

    Returns NaN when the smallest width still costs more than ``budget`` (e.g. ``total`` scope with a large patch
    embedding share).
    """
    pts = sorted(zip(rel_flops, rel_acc, strict=True))
    if not pts or pts[0][0] > budget + 1e-12:
        return math.nan
    for (f0, a0), (f1, a1) in itertools.pairwise(pts):
        if f0 <= budget <= f1:
            if f1 == f0:
                return a1
            w = (math.log(budget) - math.log(f0)) / (math.log(f1) - math.log(f0))
            return a0 + w * (a1 - a0)
    return pts[-1][1] if pts[-1][0] <= budget else math.nan


def run_sweep(
    model: nn.Module, sets: Sequence[FeatureSet], *, model_name: str, input_shape: Sequence[int],
    widths: Sequence[float] = PAPER_WIDTHS, mode: SlimMode = "width", attn_scale: AttnScale = "sliced",
    probes: Sequence[str] = ("linear", "knn"), probe_epochs: int = 30, probe_lr: float = 1e-3, knn_k: int = 20,
    device: str = "cpu", analyses: bool = True, log: Callable[[str], None] = print, embed: bool = False,
    order: SlimOrder = "prefix",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:  # fmt: skip
    """Slim ``model`` to every width, extract frozen features, probe; return (per-width rows, analysis rows).

    Each row holds ``model, dataset, probe, width, slim_embed, metric, value, flops_total, flops_blocks,
    rel_flops_total, rel_flops_blocks, relative``; ``relative = value / value(s=1)``. ``embed=True`` also cuts
    the residual width (``slim(..., embed=True)``, FLOPs ∝ s²); ``order='l1'`` keeps the highest-L1 units.
    """
    dev = torch.device(device)
    rows: list[dict[str, Any]] = []
    stats: list[dict[str, Any]] = []
    dummy = torch.zeros(1, *input_shape, device=dev)
    full: dict[str, int] = {}
    for s in widths:
        small = slim(model, s, mode, attn_scale, embed=embed, order=order).to(dev).eval()
        flops = {"total": measure_flops(small, dummy, "total"), "blocks": measure_flops(small, dummy, "blocks")}
        full = full or flops
        for fs in sets:
            xtr, ytr = _features(small, fs.train, dev)
            xte, yte = _features(small, fs.test, dev)
            if analyses:
                a = None
                if len(xte) > 2:
                    try:
                        a = analyse_features(xte.cpu().numpy())
                    except ValueError as err:  # e.g. D' = 1 after residual slimming: constant LayerNorm output
                        log(f"{fs.name} s={s:.4f}: feature analysis skipped ({err})")
                if a is not None:
                    stats.append({"model": model_name, "dataset": fs.name, "width": s, "dim": xte.shape[1],
                                  "n90": a.n90, "n95": a.n95, "mean_abs_corr": a.mean_abs_corr,
                                  "participation_ratio": a.participation_ratio, "entropy_rank": a.entropy_rank,
                                  "corr_hist": np.histogram(a.corr_values, bins=20, range=(0, 1))[0].tolist(),
                                  "cumulative_evr": a.cumulative_evr[:64].round(4).tolist()})  # fmt: skip
            for probe in probes:
                if probe == "linear":
                    scores = linear_probe_scores(xtr, ytr, xte, fs.num_classes, fs.multilabel, probe_epochs, probe_lr)
                    value = evaluate(scores, yte, fs.multilabel, from_logits=True)
                elif probe == "knn":
                    scores = knn_scores(xtr, ytr, xte, fs.num_classes, fs.multilabel, knn_k)
                    value = evaluate(scores, yte, fs.multilabel, from_logits=False)
                else:
                    raise ValueError(f"unknown probe {probe!r} (linear, knn)")
                rows.append({
                    "model": model_name, "dataset": fs.name, "probe": probe, "width": s, "slim_embed": embed,
                    "order": order,
                    "metric": "map_macro" if fs.multilabel else "accuracy", "value": value,
                    "flops_total": flops["total"], "flops_blocks": flops["blocks"],
                    "rel_flops_total": flops["total"] / full["total"],
                    "rel_flops_blocks": flops["blocks"] / full["blocks"],
                })  # fmt: skip
                log(f"{fs.name:>16} {probe:>6} s={s:.4f} {rows[-1]['metric']}={value:.4f} "
                    f"FLOPs={flops['total'] / 1e6:.2f}M ({rows[-1]['rel_flops_total']:.4f} total, "
                    f"{rows[-1]['rel_flops_blocks']:.4f} blocks)")  # fmt: skip
    for row in rows:
        same = (r for r in rows if (r["dataset"], r["probe"]) == (row["dataset"], row["probe"]))
        ref = next(r["value"] for r in same if r["width"] == max(widths))
        row["relative"] = row["value"] / ref if ref > 0 else math.nan
    return rows, stats


def summarise(rows: list[dict[str, Any]], budget: float = 0.01) -> list[dict[str, Any]]:
    """Relative accuracy at ``budget`` relative FLOPs for every (model, dataset, probe) and FLOP scope.

    NaN where the budget is not reached (with ``d_k = 64`` the smallest width 1/64 costs 1.56 % of the block
    FLOPs), so the value at the smallest width and its relative FLOPs are reported beside it.
    """
    out = []
    for key in sorted({(r["model"], r["dataset"], r["probe"]) for r in rows}):
        sel = [r for r in rows if (r["model"], r["dataset"], r["probe"]) == key]
        entry: dict[str, Any] = dict(zip(("model", "dataset", "probe"), key, strict=True))
        for scope in ("blocks", "total"):
            entry[f"relative_at_{budget:g}_flops_{scope}"] = accuracy_at_budget(
                [r[f"rel_flops_{scope}"] for r in sel], [r["relative"] for r in sel], budget
            )
        smallest = min(sel, key=lambda r: r["width"])
        entry["min_width"] = smallest["width"]
        entry["relative_at_min_width"] = smallest["relative"]
        entry["rel_flops_blocks_at_min_width"] = smallest["rel_flops_blocks"]
        entry["rel_flops_total_at_min_width"] = smallest["rel_flops_total"]
        out.append(entry)
    return out


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot(rows: list[dict[str, Any]], stats: list[dict[str, Any]], path: Path, scope: str = "blocks") -> None:
    """Relative accuracy vs relative FLOPs (log x) per dataset/probe, plus correlation histograms at s = 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for key in sorted({(r["model"], r["dataset"], r["probe"]) for r in rows}):
        sel = sorted((r for r in rows if (r["model"], r["dataset"], r["probe"]) == key), key=lambda r: r["width"])
        axes[0].plot([r[f"rel_flops_{scope}"] for r in sel], [r["relative"] for r in sel], "o-", label=" / ".join(key))
    axes[0].axvline(0.01, color="grey", ls="--", lw=0.8)
    axes[0].set(xscale="log", xlabel=f"relative FLOPs ({scope})", ylabel="relative accuracy", title="post-hoc slimming")
    axes[0].legend(fontsize=7)
    for st in stats:
        if st["width"] == max(s["width"] for s in stats):
            axes[1].stairs(st["corr_hist"], np.linspace(0, 1, 21), label=f"{st['model']} / {st['dataset']}")
    axes[1].set(xlabel="|Pearson r| (off-diagonal)", ylabel="count", title="feature correlation, s = 1")
    if stats:
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``slimming sweep`` (``--config`` YAML keys use the long option names with underscores)."""
    p = argparse.ArgumentParser(prog="slimming sweep", description="post-hoc slimming sweep with frozen probes")
    p.add_argument("--config", help="YAML file of option defaults (keys = option names with underscores)")
    p.add_argument(
        "--model", default="ssl4eo",
        help="ssl4eo | ssl4eo_resnet50 | scalemae | prithvi | dofa | croma | a timm model name",
    )  # fmt: skip
    p.add_argument("--weights", help="local weights file in the model's official key layout")
    p.add_argument("--checkpoint", help="a `slimming train` checkpoint (its encoder is evaluated)")
    p.add_argument("--model-kwargs", default="{}", help="JSON builder arguments, e.g. '{\"in_chans\": 10}'")
    p.add_argument("--name", help="model name in the CSV (default: --model or the checkpoint stem)")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--ben-root", help="BigEarthNet root (v1 examples folder or v2 archive)")
    p.add_argument("--ben-version", type=int, default=1)
    p.add_argument("--ben-metadata", help="v2 metadata.parquet (also gives v1 splits)")
    p.add_argument("--ben-bands", default="S2")
    p.add_argument("--ben-test-split", default="test")
    p.add_argument("--eurosat", help="EuroSAT-format folder (class sub-folders of .tif)")
    p.add_argument("--eurosat-divisor", type=float, default=10000.0, help="raw DN divisor (SSL4EO L1C: 10000)")
    p.add_argument("--eurosat-bands", help="comma-separated band indices to keep (default all 13)")
    p.add_argument("--eurosat-normalization", help="rsim.core stats table to standardise with instead of the divisor")
    p.add_argument("--widths", default=",".join(f"{w:g}" for w in PAPER_WIDTHS))
    p.add_argument("--mode", choices=("width", "heads"), default="width")
    p.add_argument("--attn-scale", choices=("sliced", "original"), default="sliced")
    p.add_argument(
        "--slim-embed", action="store_true",
        help="also cut the residual width D (FLOPs ~ s^2; reaches 1%% FLOPs) [assumption, off by default]",
    )  # fmt: skip
    p.add_argument(
        "--order", choices=("prefix", "l1"), default="prefix",
        help="which units to keep: the first ones (paper formalisation) or the largest L1 norm [assumption]",
    )  # fmt: skip
    p.add_argument("--probes", default="linear,knn")
    p.add_argument("--probe-epochs", type=int, default=30)
    p.add_argument("--probe-lr", type=float, default=1e-3)
    p.add_argument("--knn-k", type=int, default=20)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="runs/slimming_sweep")
    return p


def _load_model(a: argparse.Namespace) -> tuple[nn.Module, str, int]:
    if a.checkpoint:
        from rsim.slimming.tasks import SlimmableTask

        if not Path(a.checkpoint).is_file():
            raise FileNotFoundError(f"checkpoint {a.checkpoint} is missing")
        task = SlimmableTask.load_from_checkpoint(a.checkpoint, map_location="cpu")
        return task.encoder, a.name or Path(a.checkpoint).stem, int(task.hparams["in_channels"])
    kwargs = json.loads(a.model_kwargs)
    model = load_encoder(a.model, a.weights, **kwargs)
    return model, a.name or a.model, input_channels(model)


def sweep_main(argv: list[str]) -> int:
    """Post-hoc slimming sweep: CSV of accuracy vs FLOPs per width, summary at 1 % FLOPs, analyses, plot."""
    parser = build_parser()
    pre, _ = parser.parse_known_args(argv)
    if pre.config:
        import yaml

        with open(pre.config) as fh:
            parser.set_defaults(**(yaml.safe_load(fh) or {}))
    a = parser.parse_args(argv)
    torch.manual_seed(0)
    model, name, chans = _load_model(a)
    sets: list[FeatureSet] = []
    if a.ben_root:
        sets.append(bigearthnet_set(a.ben_root, a.ben_version, a.ben_metadata, a.ben_bands, a.img_size,
                                    test_split=a.ben_test_split))  # fmt: skip
    if a.eurosat:
        bands = [int(b) for b in a.eurosat_bands.split(",")] if a.eurosat_bands else None
        sets.append(eurosat_set(a.eurosat, a.img_size, a.eurosat_divisor, bands, normalization=a.eurosat_normalization))
    if not sets:
        parser.error("give --ben-root and/or --eurosat")
    for fs in sets:
        got = fs.train[0][0].shape[1]
        if got != chans:
            raise ValueError(f"{fs.name} yields {got} channels but model {name} expects {chans}")
    widths = [float(eval_width(w)) for w in str(a.widths).split(",")]
    rows, stats = run_sweep(
        model, sets, model_name=name, input_shape=(chans, a.img_size, a.img_size), widths=widths, mode=a.mode,
        attn_scale=a.attn_scale, probes=a.probes.split(","), probe_epochs=a.probe_epochs, probe_lr=a.probe_lr,
        knn_k=a.knn_k, device=a.device, embed=bool(a.slim_embed), order=a.order,
    )  # fmt: skip
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "sweep.csv", rows)
    summary = summarise(rows)
    _write_csv(out / "summary.csv", summary)
    with atomic_path(out / "analysis.json") as tmp:
        tmp.write_text(json.dumps(stats, indent=1))
    plot(rows, stats, out / "sweep.png")
    for entry in summary:
        print(", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in entry.items()))
    print(f"wrote {out / 'sweep.csv'}, {out / 'summary.csv'}, {out / 'analysis.json'}, {out / 'sweep.png'}")
    return 0


def eval_width(text: str) -> float:
    """Parse a width: a float or a fraction ``a/b``."""
    text = text.strip()
    if "/" in text:
        num, den = text.split("/")
        return float(num) / float(den)
    return float(text)
