"""TerraScope-Bench evaluation: option-letter accuracy per task and macro average, mask IoU, IoU ↔ correctness.

Mask metrics (the released evaluation has none; our definition): the k-th predicted mask of an item is compared
with its k-th ground-truth mask (a missing prediction counts as an empty mask, extra predictions are ignored);
``miou`` = mean over items of the mean IoU of their masks; ``giou``/``ciou`` = :class:`rsim.core.metrics.MaskIoU`
over all mask pairs (mean per-mask IoU / cumulative intersection over cumulative union).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from rsim.core.errors import DataFormatError, MissingKeyError
from rsim.core.io import atomic_path
from rsim.core.metrics import MaskIoU
from rsim.terrascope.data.bench import TASK_ABBREVIATIONS, TASK_TYPES, BenchItem
from rsim.terrascope.data.masks import decode_rle

ParseFrom = Literal["answer_tag", "full"]
_LETTER = re.compile(r"\b[A-D]\b")
_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL)

__all__ = ["EvalReport", "Prediction", "evaluate", "extract_letter", "load_predictions", "write_predictions"]


def extract_letter(text: str, *, parse_from: ParseFrom = "answer_tag") -> str | None:
    r"""First ``\\b[A-D]\\b`` of the prediction (inside ``<answer>…</answer>`` when present with ``answer_tag``)."""
    if parse_from == "answer_tag":
        tag = _ANSWER.search(text)
        if tag is not None:
            text = tag.group(1)
    match = _LETTER.search(text)
    return match.group(0) if match else None


@dataclass
class Prediction:
    """A model's output for one bench item (``index`` = the item's ``index``)."""

    index: int
    text: str
    masks: list[np.ndarray] = field(default_factory=list)


def write_predictions(predictions: Sequence[Prediction], path: str | os.PathLike[str]) -> Path:
    """JSON lines ``{"index", "prediction", "masks": [RLE...]}``, written atomically."""
    from rsim.terrascope.data.masks import encode_rle

    out = Path(path)
    with atomic_path(out) as tmp:
        with tmp.open("w") as fh:
            for p in predictions:
                row = {"index": p.index, "prediction": p.text, "masks": [encode_rle(m) for m in p.masks]}
                fh.write(json.dumps(row) + "\n")
    return out


def load_predictions(path: str | os.PathLike[str]) -> list[Prediction]:
    """Read prediction JSON lines.

    Raises:
        FileNotFoundError: The file is missing.
        DataFormatError: A line is not JSON or a mask is not an RLE.
        MissingKeyError: A line lacks ``index`` or ``prediction``.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"predictions file {p} is missing")
    out = []
    for n, line in enumerate(p.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{p} line {n}: not JSON ({exc})") from exc
        for key in ("index", "prediction"):
            if key not in row:
                raise MissingKeyError(f"{p} line {n}: field {key!r} is missing")
        masks = [decode_rle(r, source=f"{p} line {n} masks[{k}]") for k, r in enumerate(row.get("masks", []))]
        out.append(Prediction(int(row["index"]), str(row["prediction"]), masks))
    return out


@dataclass
class EvalReport:
    """Accuracy per task, macro average, mask metrics and the IoU ↔ correctness relation."""

    accuracy: dict[str, float]
    counts: dict[str, int]
    macro_accuracy: float
    overall_accuracy: float
    mask: dict[str, float]
    mask_per_task: dict[str, float]
    iou_correct: float
    iou_wrong: float
    pearson_r: float
    pearson_p: float
    item_iou: list[float]
    item_correct: list[bool]

    def table(self) -> str:
        """Markdown table of the results."""
        lines = ["| task | n | accuracy (%) | mask mIoU |", "|---|---:|---:|---:|"]
        for task, acc in self.accuracy.items():
            miou = self.mask_per_task.get(task, float("nan"))
            lines.append(
                f"| {task} ({TASK_ABBREVIATIONS.get(task, '-')}) | {self.counts[task]} | {100 * acc:.1f} | {miou:.3f} |"
            )
        lines.append(
            f"| **macro average** | {sum(self.counts.values())} | {100 * self.macro_accuracy:.1f} | "
            f"{self.mask.get('miou', float('nan')):.3f} |"
        )
        lines += [
            "",
            f"overall accuracy {100 * self.overall_accuracy:.1f} %; gIoU {self.mask.get('giou', float('nan')):.3f}, "
            f"cIoU {self.mask.get('ciou', float('nan')):.3f}",
            f"mean IoU of correct answers {self.iou_correct:.3f}, of wrong answers {self.iou_wrong:.3f}; "
            f"Pearson r(IoU, correct) = {self.pearson_r:.3f} (p = {self.pearson_p:.3g})",
        ]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON summary (per-item values excluded)."""
        skip = {"item_iou", "item_correct"}
        return {k: v for k, v in self.__dict__.items() if k not in skip}


def _iou(pred: np.ndarray, gt: np.ndarray) -> float:
    union = np.logical_or(pred, gt).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, gt).sum() / union)


def evaluate(
    items: Sequence[BenchItem], predictions: Sequence[Prediction], *, parse_from: ParseFrom = "answer_tag"
) -> EvalReport:
    """Score predictions against bench items (joined on ``index``; an item without a prediction is wrong).

    Raises:
        DataFormatError: A predicted mask's shape differs from its ground truth, or an index is unknown.
    """
    by_index = {it.index: it for it in items}
    preds = {p.index: p for p in predictions}
    unknown = sorted(set(preds) - set(by_index))
    if unknown:
        raise DataFormatError(f"predictions for unknown item index(es) {unknown[:5]}")
    correct: dict[str, list[bool]] = {}
    metric = MaskIoU()
    task_iou: dict[str, list[float]] = {}
    item_iou: list[float] = []
    item_ok: list[bool] = []
    for it in items:
        pred = preds.get(it.index)
        ok = pred is not None and extract_letter(pred.text, parse_from=parse_from) == it.answer
        correct.setdefault(it.task_type, []).append(ok)
        if not it.gt_masks:
            continue
        ious = []
        for k, gt in enumerate(it.gt_masks):
            pm = pred.masks[k] if pred is not None and k < len(pred.masks) else np.zeros_like(gt, dtype=bool)
            if pm.shape != gt.shape:
                raise DataFormatError(f"item {it.index}: predicted mask {k} is {pm.shape}, ground truth {gt.shape}")
            ious.append(_iou(pm, gt))
            metric.update(torch.from_numpy(pm[None].astype(bool)), torch.from_numpy(gt[None].astype(bool)))
        item_iou.append(float(np.mean(ious)))
        item_ok.append(ok)
        task_iou.setdefault(it.task_type, []).append(item_iou[-1])
    order = [t for t in TASK_TYPES if t in correct] + sorted(t for t in correct if t not in TASK_TYPES)
    accuracy = {t: float(np.mean(correct[t])) for t in order}
    all_ok = [v for t in order for v in correct[t]]
    mask: dict[str, float] = {}
    if item_iou:
        stats = metric.compute()
        mask = {"miou": float(np.mean(item_iou)), "giou": float(stats["giou"]), "ciou": float(stats["ciou"])}
    iou_arr, ok_arr = np.asarray(item_iou), np.asarray(item_ok, dtype=bool)
    r, p = float("nan"), float("nan")
    if len(iou_arr) > 2 and 0 < ok_arr.sum() < len(ok_arr) and iou_arr.std() > 0:
        from scipy.stats import pearsonr

        res = pearsonr(iou_arr, ok_arr.astype(float))
        r, p = float(res.statistic), float(res.pvalue)
    return EvalReport(
        accuracy=accuracy,
        counts={t: len(correct[t]) for t in order},
        macro_accuracy=float(np.mean(list(accuracy.values()))) if accuracy else float("nan"),
        overall_accuracy=float(np.mean(all_ok)) if all_ok else float("nan"),
        mask=mask,
        mask_per_task={t: float(np.mean(v)) for t, v in task_iou.items()},
        iou_correct=float(iou_arr[ok_arr].mean()) if ok_arr.any() else float("nan"),
        iou_wrong=float(iou_arr[~ok_arr].mean()) if (~ok_arr).any() else float("nan"),
        pearson_r=r,
        pearson_p=p,
        item_iou=item_iou,
        item_correct=item_ok,
    )


def write_report(report: EvalReport, out_dir: str | os.PathLike[str], *, plot: bool = True) -> list[Path]:
    """Write ``results.md``, ``results.json`` and (with ``plot``) ``results.png`` (accuracy per task, IoU)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(report.table() + "\n")
    written.append(out / "results.md")
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(report.to_json(), indent=2))
    written.append(out / "results.json")
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        tasks = list(report.accuracy)
        axes[0].bar([TASK_ABBREVIATIONS.get(t, t) for t in tasks], [100 * report.accuracy[t] for t in tasks])
        axes[0].set_ylabel("accuracy (%)")
        axes[0].set_title(f"macro average {100 * report.macro_accuracy:.1f} %")
        iou = np.asarray(report.item_iou)
        ok = np.asarray(report.item_correct, dtype=bool)
        groups = [iou[ok], iou[~ok]]
        axes[1].boxplot([g if len(g) else np.array([np.nan]) for g in groups])
        axes[1].set_xticks([1, 2], ["correct", "wrong"])
        axes[1].set_ylabel("mask IoU per item")
        axes[1].set_title(f"r = {report.pearson_r:.2f}")
        fig.tight_layout()
        with atomic_path(out / "results.png") as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
        written.append(out / "results.png")
    return written


__all__ += ["write_report"]
