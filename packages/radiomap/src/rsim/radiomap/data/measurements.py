"""Real measurement campaigns in the paper's JSON format and their evaluation protocol.

Format: ``{tx: {area: {point: {"coordinates": [row, col] on the 32×32 grid, "pl": dB,
"percentage_samples_available": %}}}}``. Points are kept when more than 50 % of the samples are available.
Protocol [code]: per draw, one random point from each observation area is observed; the RMSE is taken over all
points of the ground-truth (shadowed) areas; averaged over ``n_draws`` draws and all Tx.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from rsim.core.errors import DataFormatError

__all__ = ["MeasurementPoint", "evaluate_campaign", "load_campaign"]


@dataclass(frozen=True)
class MeasurementPoint:
    """One measured point: grid cell ``(row, col)``, path gain in dB, share of samples available (%)."""

    row: int
    col: int
    pl: float
    available: float


Campaign = dict[str, dict[str, list[MeasurementPoint]]]
#: predictor(tx, obs_rc [n, 2] int, obs_db [n]) → predicted map [32, 32] in dB
Predictor = Callable[[str, NDArray[np.int64], NDArray[np.float64]], NDArray[np.float64]]


def load_campaign(path: str | Path, *, min_available: float = 50.0, map_size: int = 32) -> Campaign:
    """Read a campaign JSON, keep points with ``percentage_samples_available > min_available``.

    Raises:
        FileNotFoundError: Missing file.
        DataFormatError: Invalid JSON, a missing field, non-finite values or coordinates off the grid.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: measurement campaign JSON not found")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path}: invalid JSON ({exc})") from exc
    out: Campaign = {}
    for tx, areas in raw.items():
        out[str(tx)] = {}
        for area, points in areas.items():
            kept = []
            for name, p in points.items():
                where = f"{path}: Tx {tx} area {area} point {name}"
                for key in ("coordinates", "pl", "percentage_samples_available"):
                    if key not in p:
                        raise DataFormatError(f"{where}: missing field {key!r}")
                rc = np.asarray(p["coordinates"], dtype=np.float64)
                if rc.shape != (2,) or not np.isfinite(rc).all() or not ((rc >= 0) & (rc < map_size)).all():
                    raise DataFormatError(f"{where}: coordinates must be [row, col] on the {map_size}² grid")
                pl, avail = float(p["pl"]), float(p["percentage_samples_available"])
                if not np.isfinite(pl):
                    raise DataFormatError(f"{where}: pl is not finite")
                if avail > min_available:
                    kept.append(MeasurementPoint(int(rc[0]), int(rc[1]), pl, avail))
            out[str(tx)][str(area)] = kept
    return out


def evaluate_campaign(
    campaign: Campaign,
    predictor: Predictor,
    *,
    obs_areas: Sequence[str],
    gt_areas: Sequence[str],
    n_draws: int = 500,
    seed: int = 0,
) -> float:
    """Mean RMSE (dB) over draws and Tx of ``predictor`` on the ground-truth areas (see module docstring)."""
    rng = np.random.default_rng(seed)
    rmses = []
    for tx, areas in campaign.items():
        gt = [p for a in gt_areas for p in areas.get(a, [])]
        pools = [areas.get(a, []) for a in obs_areas]
        pools = [p for p in pools if p]
        if not gt or not pools:
            continue
        gt_rc = np.array([(p.row, p.col) for p in gt])
        gt_db = np.array([p.pl for p in gt])
        for _ in range(n_draws):
            obs = [pool[int(rng.integers(len(pool)))] for pool in pools]
            pred = predictor(tx, np.array([(p.row, p.col) for p in obs]), np.array([p.pl for p in obs]))
            rmses.append(float(np.sqrt(np.mean((pred[gt_rc[:, 0], gt_rc[:, 1]] - gt_db) ** 2))))
    if not rmses:
        raise ValueError("evaluate_campaign: no Tx has both observation and ground-truth points")
    return float(np.mean(rmses))
