"""Classical satellite-derived-bathymetry baselines and the comparison table of ``seabednet baselines``.

* Stumpf et al. (2003) log-ratio: ``z = m1 * ln(n * R_blue) / ln(n * R_green) - m0``.
* Lyzenga (1978/1985) linear: ``z = a0 + sum_i a_i * ln(R_i - R_inf_i)``.
* Random forest regression on per-pixel band values, log bands and the Stumpf ratio (scikit-learn).

All are fitted on the valid pixels of the training patches (least squares for the empirical models) and
evaluated on the test patches at native resolution, in metres (positive down).

Trained networks (Seabed-Net and the single-task baselines of ``rsim.seabednet.models.unet``, all trained with
``SeabedNetTask``) are evaluated on the same test patches by ``evaluate_network``: sliding-window prediction at
native resolution, depth metrics over the same valid pixels, and segmentation metrics (OA, macro F1, kappa,
mIoU, "undefined" excluded) for networks with a class head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from rsim.core.metrics import MaskedRegressionMetrics, SegmentationMetrics
from rsim.seabednet.data.magicbathynet import MagicBathyNetReader
from rsim.seabednet.models.unet import head_channels
from rsim.seabednet.predict import MapPredictor

__all__ = [
    "LyzengaModel",
    "RandomForestModel",
    "StumpfModel",
    "collect_pixels",
    "depth_metrics",
    "evaluate_network",
    "format_table",
    "run_baselines",
]

_EPS = 1e-4


class PixelRegressor(Protocol):
    """Fit/predict on pixel tables ``X [N, C]`` (normalised reflectance) and ``y [N]`` (metres)."""

    name: str

    def fit(self, x: np.ndarray, y: np.ndarray) -> PixelRegressor: ...

    def predict(self, x: np.ndarray) -> np.ndarray: ...


def _lstsq(features: np.ndarray, y: np.ndarray) -> np.ndarray:
    a = np.concatenate([features, np.ones((features.shape[0], 1))], axis=1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(a, y.astype(np.float64), rcond=None)
    return coef


@dataclass
class StumpfModel:
    """Stumpf log-ratio model (blue/green by default) fitted by least squares.

    Attributes:
        numerator: Band index of the numerator (blue).
        denominator: Band index of the denominator (green).
        n: Constant keeping both logarithms positive (Stumpf et al. use 1000).
    """

    numerator: int = 2
    denominator: int = 1
    n: float = 1000.0
    name: str = "Stumpf log-ratio"
    coef_: np.ndarray = field(default_factory=lambda: np.zeros(2))

    def _ratio(self, x: np.ndarray) -> np.ndarray:
        num = np.log(self.n * np.clip(x[:, self.numerator], _EPS, None))
        den = np.log(self.n * np.clip(x[:, self.denominator], _EPS, None))
        den = np.where(np.abs(den) < _EPS, _EPS, den)
        return (num / den)[:, None]

    def fit(self, x: np.ndarray, y: np.ndarray) -> StumpfModel:
        """Least-squares ``m1, -m0``."""
        self.coef_ = _lstsq(self._ratio(x), y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Depth in metres."""
        return (self._ratio(x)[:, 0] * self.coef_[0] + self.coef_[1]).astype(np.float32)


@dataclass
class LyzengaModel:
    """Lyzenga log-linear model over all bands fitted by least squares.

    Attributes:
        deep_water: Deep-water reflectance ``R_inf`` per band (``None``: 0, i.e. ``ln(R_i)``).
    """

    deep_water: Sequence[float] | None = None
    name: str = "Lyzenga linear"
    coef_: np.ndarray = field(default_factory=lambda: np.zeros(1))

    def _features(self, x: np.ndarray) -> np.ndarray:
        r_inf = np.zeros(x.shape[1]) if self.deep_water is None else np.asarray(self.deep_water)
        return np.log(np.clip(x - r_inf[None], _EPS, None))

    def fit(self, x: np.ndarray, y: np.ndarray) -> LyzengaModel:
        """Least-squares ``a_i`` and ``a0``."""
        self.coef_ = _lstsq(self._features(x), y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Depth in metres."""
        return (self._features(x) @ self.coef_[:-1] + self.coef_[-1]).astype(np.float32)


@dataclass
class RandomForestModel:
    """Random-forest regressor (scikit-learn) on bands, log bands and the blue/green Stumpf ratio.

    Attributes:
        n_estimators: Trees.
        max_depth: Tree depth limit.
        max_samples: Training pixels drawn at random (keeps fitting fast).
        seed: Random seed.
    """

    n_estimators: int = 100
    max_depth: int | None = 16
    max_samples: int = 50_000
    seed: int = 0
    name: str = "Random forest"

    def _features(self, x: np.ndarray) -> np.ndarray:
        logs = np.log(np.clip(x, _EPS, None))
        ratio = StumpfModel()._ratio(x) if x.shape[1] >= 3 else np.zeros((x.shape[0], 1))
        return np.concatenate([x, logs, ratio], axis=1)

    def fit(self, x: np.ndarray, y: np.ndarray) -> RandomForestModel:
        """Fit on at most ``max_samples`` random pixels."""
        from sklearn.ensemble import RandomForestRegressor

        rng = np.random.default_rng(self.seed)
        if x.shape[0] > self.max_samples:
            idx = rng.choice(x.shape[0], self.max_samples, replace=False)
            x, y = x[idx], y[idx]
        self.model_ = RandomForestRegressor(
            n_estimators=self.n_estimators, max_depth=self.max_depth, random_state=self.seed, n_jobs=1
        ).fit(self._features(x), y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Depth in metres."""
        return self.model_.predict(self._features(x)).astype(np.float32)


def _normalise(image: np.ndarray, norm: np.ndarray, channel_order: str) -> np.ndarray:
    if channel_order == "reverse":
        image = image[::-1]
    lo, hi = norm[0][:, None, None], norm[1][:, None, None]
    return np.clip((image - lo) / (hi - lo), 0.0, 1.0)


def collect_pixels(
    reader: MagicBathyNetReader, ids: Sequence[str], channel_order: str = "native"
) -> tuple[np.ndarray, np.ndarray]:
    """Valid pixels of ``ids``: ``X [N, C]`` normalised reflectance and ``y [N]`` depth in metres (positive)."""
    norm = reader.norm_param()
    xs, ys = [], []
    for pid in ids:
        image, _ = reader.read_image(pid)
        depth = reader.read_depth(pid)
        valid = (depth != 0) & ((image != 0).mean(axis=0) >= 0.5)
        x = _normalise(image, norm, channel_order)
        xs.append(x[:, valid].T)
        ys.append(-depth[valid])
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.float32)


def depth_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and error std in metres (``rsim.core.metrics.MaskedRegressionMetrics``)."""
    m = MaskedRegressionMetrics()
    m.update(torch.from_numpy(np.asarray(pred, np.float32)), torch.from_numpy(np.asarray(target, np.float32)))
    return {k: float(v) for k, v in m.compute().items()}


def run_baselines(
    reader: MagicBathyNetReader,
    train_ids: Sequence[str],
    test_ids: Sequence[str],
    models: Sequence[PixelRegressor] | None = None,
    channel_order: str = "native",
) -> list[dict[str, float | str]]:
    """Fit each model on the training pixels and evaluate on the test pixels.

    Returns:
        One row per model: ``method``, ``rmse``, ``mae``, ``error_std`` (metres) and ``n_test`` pixels.
    """
    models = list(models) if models is not None else [StumpfModel(), LyzengaModel(), RandomForestModel()]
    x_tr, y_tr = collect_pixels(reader, train_ids, channel_order)
    x_te, y_te = collect_pixels(reader, test_ids, channel_order)
    if x_tr.shape[0] == 0 or x_te.shape[0] == 0:
        raise ValueError(f"{reader.site_dir}: no valid depth pixels in the train or test patches")
    rows: list[dict[str, float | str]] = []
    for model in models:
        model.fit(x_tr, y_tr)
        row: dict[str, float | str] = {"method": model.name}
        row.update(depth_metrics(model.predict(x_te), y_te))
        row["n_test"] = float(y_te.size)
        rows.append(row)
    return rows


def evaluate_network(
    predictor: MapPredictor,
    reader: MagicBathyNetReader,
    test_ids: Sequence[str],
    undefined_index: int | None = None,
) -> dict[str, float | str]:
    """Evaluate a trained network on the test patches at native resolution.

    Depth is scored on the pixels the pixel baselines use (depth label present and image valid); classes on
    every labelled pixel of a valid image, "undefined" excluded.

    Returns:
        ``method`` (``predictor.name``), and ``rmse``, ``mae``, ``error_std``, ``n_test`` for a depth head,
        ``oa``, ``f1_macro``, ``kappa``, ``miou``, ``n_test_seg`` for a class head.
    """
    n_depth, n_classes = head_channels(predictor.model)
    seg = SegmentationMetrics(n_classes, ignore_index=undefined_index) if n_classes else None
    preds, gts = [], []
    n_seg = 0
    for pid in test_ids:
        image, _ = reader.read_image(pid)
        depth_m, classes, valid = predictor.predict_array(image, str(reader.path("img", pid)))
        if depth_m is not None:
            depth = reader.read_depth(pid)
            m = valid & (depth != 0)
            preds.append(depth_m[m])
            gts.append(-depth[m])
        if classes is not None and seg is not None:
            labels = reader.read_labels(pid)
            keep = valid if undefined_index is None else valid & (labels != undefined_index)
            pred_k = torch.from_numpy(classes[keep].astype(np.int64))
            seg.update(pred_k, torch.from_numpy(labels[keep].astype(np.int64)))
            n_seg += int(keep.sum())
    row: dict[str, float | str] = {"method": predictor.name}
    if n_depth:
        if not preds or sum(p.size for p in preds) == 0:
            raise ValueError(f"{reader.site_dir}: no valid depth pixels in the test patches")
        row.update(depth_metrics(np.concatenate(preds), np.concatenate(gts)))
        row["n_test"] = float(sum(g.size for g in gts))
    if seg is not None:
        sm = seg.compute()
        row.update({k: float(sm[k]) for k in ("oa", "f1_macro", "kappa", "miou")})
        row["n_test_seg"] = float(n_seg)
    return row


def _cell(row: dict[str, float | str], key: str, fmt: str) -> str:
    return format(float(row[key]), fmt) if key in row else "–"


def format_table(rows: Sequence[dict[str, float | str]]) -> str:
    """Markdown table of baseline rows (depth columns, and segmentation columns when a row has them)."""
    with_seg = any("oa" in r for r in rows)
    head = "| method | RMSE (m) | MAE (m) | error std (m) | test pixels |"
    rule = "|---|---:|---:|---:|---:|"
    if with_seg:
        head += " OA | F1 macro | kappa | mIoU | seg test pixels |"
        rule += "---:|---:|---:|---:|---:|"
    lines = [head, rule]
    for r in rows:
        line = (
            f"| {r['method']} | {_cell(r, 'rmse', '.3f')} | {_cell(r, 'mae', '.3f')} | "
            f"{_cell(r, 'error_std', '.3f')} | {_cell(r, 'n_test', '.0f')} |"
        )
        if with_seg:
            line += (
                f" {_cell(r, 'oa', '.3f')} | {_cell(r, 'f1_macro', '.3f')} | {_cell(r, 'kappa', '.3f')} | "
                f"{_cell(r, 'miou', '.3f')} | {_cell(r, 'n_test_seg', '.0f')} |"
            )
        lines.append(line)
    return "\n".join(lines)
