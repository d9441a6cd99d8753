"""Classical baselines in one harness: FSPL (plain / offset / gain+offset), RBF and thin-plate interpolation,
ray-tracing map + offset. All work per sample in dB on the 32×32 Rx grid.
"""  # noqa: D205

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
from numpy.typing import NDArray
from rsim.core.metrics import MaskedRegressionMetrics
from rsim.radiomap.data.layout import PL_MAX, PL_RANGE, PL_TRNC

__all__ = [
    "BASELINES",
    "evaluate_baselines",
    "fspl_db",
    "fspl_gain_offset",
    "fspl_offset",
    "raytracing_offset",
    "rbf_interpolation",
    "thin_plate",
]

Array = NDArray[np.float64]
#: signature of a baseline: (obs_xy [n, 2] m, obs_db [n], tx (x, y, z) m, grid_xy [M·M, 2] m) → prediction [M·M] dB
Baseline = Callable[[Array, Array, Array, Array], Array]


def fspl_db(tx: Array, grid_xy: Array, *, rx_height: float = 1.0, frequency_hz: float = 5.82e9) -> Array:
    """Free-space path gain (dB) at the Rx cells: ``−(20·log10 d + 20·log10 f − 147.55)``, d ≥ 0.1 m (3-D)."""
    d = np.sqrt(((grid_xy - tx[:2]) ** 2).sum(-1) + (tx[2] - rx_height) ** 2)
    return -(20 * np.log10(np.maximum(d, 0.1)) + 20 * math.log10(frequency_hz) - 147.55)


def _fspl(obs_xy: Array, obs_db: Array, tx: Array, grid_xy: Array) -> Array:
    return fspl_db(tx, grid_xy)


def fspl_offset(obs_xy: Array, obs_db: Array, tx: Array, grid_xy: Array) -> Array:
    """FSPL plus the mean offset of the observations (plain FSPL without observations)."""
    pred = fspl_db(tx, grid_xy)
    if len(obs_db) == 0:
        return pred
    return pred + float(np.mean(obs_db - fspl_db(tx, obs_xy)))


def fspl_gain_offset(obs_xy: Array, obs_db: Array, tx: Array, grid_xy: Array) -> Array:
    """Least-squares ``a·FSPL + b`` fitted to the observations (offset only with < 3 observations)."""
    if len(obs_db) < 3:
        return fspl_offset(obs_xy, obs_db, tx, grid_xy)
    f_obs = fspl_db(tx, obs_xy)
    a_mat = np.stack([f_obs, np.ones_like(f_obs)], 1)
    (a, b), *_ = np.linalg.lstsq(a_mat, obs_db, rcond=None)
    return a * fspl_db(tx, grid_xy) + b


def rbf_interpolation(epsilon: float = 1.0) -> Baseline:
    """Gaussian RBF interpolation of the observations' deviation from their mean (``scipy RBFInterpolator``)."""

    def fn(obs_xy: Array, obs_db: Array, tx: Array, grid_xy: Array) -> Array:
        from scipy.interpolate import RBFInterpolator

        if len(obs_db) == 0:
            return np.full(len(grid_xy), np.nan)
        mean = float(obs_db.mean())
        if len(obs_db) == 1:
            return np.full(len(grid_xy), mean)
        rbf = RBFInterpolator(obs_xy, obs_db - mean, kernel="gaussian", epsilon=epsilon)
        return np.asarray(rbf(grid_xy)) + mean

    return fn


def thin_plate(smoothing: float = 0.0) -> Baseline:
    """Thin-plate spline with a linear polynomial (``scipy RBFInterpolator``); mean with < 3 observations."""

    def fn(obs_xy: Array, obs_db: Array, tx: Array, grid_xy: Array) -> Array:
        from scipy.interpolate import RBFInterpolator

        if len(obs_db) == 0:
            return np.full(len(grid_xy), np.nan)
        if len(obs_db) < 3:
            return np.full(len(grid_xy), float(obs_db.mean()))
        try:
            rbf = RBFInterpolator(obs_xy, obs_db, kernel="thin_plate_spline", smoothing=smoothing)
        except (np.linalg.LinAlgError, ValueError):  # collinear points: no unique linear term
            return np.full(len(grid_xy), float(obs_db.mean()))
        return np.asarray(rbf(grid_xy))

    return fn


def raytracing_offset(rt_map_db: Array) -> Baseline:
    """A precomputed ray-tracing map (dB, flattened like the grid) shifted by the mean offset of the observations."""

    def fn(obs_xy: Array, obs_db: Array, tx: Array, grid_xy: Array) -> Array:
        if len(obs_db) == 0:
            return rt_map_db.copy()
        idx = [int(np.argmin(((grid_xy - p) ** 2).sum(-1))) for p in obs_xy]
        return rt_map_db + float(np.mean(obs_db - rt_map_db[idx]))

    return fn


BASELINES: dict[str, Baseline] = {
    "fspl": _fspl,
    "fspl+offset": fspl_offset,
    "fspl+gain+offset": fspl_gain_offset,
    "rbf": rbf_interpolation(1.0),
    "thin_plate": thin_plate(0.0),
}


def grid_xy(map_size: int, extent_m: float) -> Array:
    """Centres of the Rx cells ``[M·M, 2]`` (x along columns, y along rows), row-major."""
    c = (np.arange(map_size) + 0.5) * extent_m / map_size
    yy, xx = np.meshgrid(c, c, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], 1)


def evaluate_baselines(
    batches: Iterable[dict[str, torch.Tensor]],
    methods: dict[str, Baseline] | None = None,
    *,
    extent_m: float = 9.6,
) -> dict[str, float]:
    """RMSE in dB of each baseline over all valid pixels of prepared batches (``RadioMapDataModule.prepare_batch``).

    Predictions are clipped to the dataset's −71…−12 dB range like the targets.
    """
    methods = methods or BASELINES
    metrics = {name: MaskedRegressionMetrics() for name in methods}
    xy: Array | None = None
    for batch in batches:
        target = batch["target"][:, 0].double().cpu().numpy() * PL_RANGE + PL_TRNC
        valid, obs = batch["mask"][:, 0].cpu().numpy(), batch["obs"][:, 0].cpu().numpy()
        tx = batch["tx"].double().cpu().numpy()
        m = target.shape[-1]
        if xy is None:
            xy = grid_xy(m, extent_m)
        for i in range(len(target)):
            o = obs[i].ravel()
            obs_xy, obs_db = xy[o], target[i].ravel()[o]
            for name, fn in methods.items():
                pred = np.clip(fn(obs_xy, obs_db, tx[i], xy), PL_TRNC, PL_MAX).reshape(m, m)
                metrics[name].update(torch.from_numpy(pred), torch.from_numpy(target[i]), torch.from_numpy(valid[i]))
    return {name: float(mt.compute()["rmse"]) for name, mt in metrics.items()}
