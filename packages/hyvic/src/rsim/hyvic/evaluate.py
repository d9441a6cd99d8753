"""RD evaluation with real bitstreams (``hyvic rd``) and metric-driven selection (``hyvic select``)."""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from compressai.models import CompressionModel
from rsim.core.errors import DataFormatError
from rsim.core.io import atomic_path
from rsim.core.metrics import bd_psnr, bd_rate, spectral_angle
from rsim.hyvic.checkpoint import model_architecture, model_config
from rsim.hyvic.codec import (
    compress_source,
    default_scale,
    iter_decoded_tiles,
    likelihood_bits,
    open_source,
    to_unit,
)


def rd_point(
    model: CompressionModel,
    input_path: str | Path,
    *,
    tile: int = 256,
    grid: int = 10,
    scale: float | None = None,
    scale_index: str = "nearest",
) -> dict[str, float]:
    """Code one image with one model and measure PSNR, SA, bitstream and likelihood bpppc, CR and times.

    Streams: the image is compressed, decoded and compared tile by tile (window reads of the source), so
    memory does not grow with the image size. PSNR is that of the whole image (its MSE over all bands and
    pixels, data range 1); SA is the mean angle over all pixels, as ``rsim.core.metrics`` computes them.
    """
    with open_source(input_path, grid=grid) as src, tempfile.TemporaryDirectory() as tmp:
        scale = float(scale if scale is not None else default_scale(src.dtype))
        hyv = Path(tmp) / "x.hyv"
        stats = compress_source(model, src, hyv, tile=tile, scale=scale, scale_index=scale_index)
        sse, angle_sum, num_pixels = 0.0, 0.0, 0
        dec_s = 0.0
        tiles = iter_decoded_tiles(model, hyv)
        while True:
            t0 = time.perf_counter()
            item = next(tiles, None)
            dec_s += time.perf_counter() - t0
            if item is None:
                break
            _, (r, c, h, w), x_hat = item
            x = to_unit(src.read(r, c, h, w), scale, f"{src.name} tile at row {r}, col {c}")
            xt, xh = torch.from_numpy(x)[None], torch.from_numpy(x_hat)[None]
            sse += float(((xh.double() - xt.double()) ** 2).sum())
            angle_sum += float(spectral_angle(xh, xt)) * h * w
            num_pixels += h * w
        lik_bits = likelihood_bits(model, src, tile=tile, scale=scale)
        c_all = src.shape[0]
    mse = sse / (c_all * num_pixels)
    return {
        "bpppc": stats.bpppc,
        "bpppc_likelihood": lik_bits / (c_all * num_pixels),
        "cr": stats.compression_ratio,
        "psnr": 10.0 * math.log10(1.0 / mse) if mse > 0 else math.inf,
        "sa": angle_sum / num_pixels,
        "bytes": stats.num_bytes,
        "encode_s": stats.seconds,
        "decode_s": dec_s,
    }


def rd_curve(
    models: Sequence[tuple[str, CompressionModel]],
    input_path: str | Path,
    *,
    name: str,
    tile: int = 256,
    grid: int = 10,
    scale: float | None = None,
    scale_index: str = "nearest",
) -> dict[str, Any]:
    """RD points of several models (one per rate) sorted by rate: ``{"name", "config", "points"}``."""
    points: list[dict[str, Any]] = []
    for label, model in models:
        p = rd_point(model, input_path, tile=tile, grid=grid, scale=scale, scale_index=scale_index)
        points.append({"model": label, **p})
    points.sort(key=lambda p: float(p["bpppc"]))
    first = models[0][1]
    return {
        "name": name,
        "architecture": model_architecture(first),
        "config": model_config(first),
        "input": str(input_path),
        "points": points,
    }


def monotone_hull(points: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split RD points into the monotone hull and the dominated rest.

    The hull keeps, in order of rate, every point whose PSNR is strictly higher than that of all cheaper
    points (the operating points a user would choose; a point that costs more bits for no more PSNR is
    dominated). Bjøntegaard's cubic fit needs PSNR strictly increasing with rate, which the hull satisfies.

    Returns:
        ``(hull, dropped)``, both sorted by rate.
    """
    ordered = sorted(points, key=lambda p: (float(p["bpppc"]), -float(p["psnr"])))
    hull: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    for p in ordered:
        if (not hull or float(p["psnr"]) > float(hull[-1]["psnr"])) and (
            not hull or float(p["bpppc"]) > float(hull[-1]["bpppc"])
        ):
            hull.append(p)
        else:
            dropped.append(p)
    return hull, dropped


def _curve_arrays(curve: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pts = curve.get("points")
    if not pts:
        raise DataFormatError(f"RD curve {curve.get('name')!r} has no points")
    return (
        np.array([p["bpppc"] for p in pts]),
        np.array([p["psnr"] for p in pts]),
        np.array([p["sa"] for p in pts]),
    )


def _hull_curve(curve: dict[str, Any]) -> tuple[dict[str, Any], int]:
    hull, dropped = monotone_hull(curve.get("points") or [])
    return {**curve, "points": hull}, len(dropped)


def bd_table(curves: Sequence[dict[str, Any]], anchor: dict[str, Any], *, hull: bool = False) -> list[dict[str, Any]]:
    """BD-PSNR (dB), BD-SA (degrees, negative = better) and BD-rate (%) of each curve against ``anchor``.

    BD-SA uses the Bjøntegaard integral on -SA (so SA must fall as rate grows) and reports
    ``SA_test - SA_ref``. With ``hull=True`` every curve (and the anchor) is first reduced to its
    :func:`monotone_hull`; the rows say how many points were dropped (``dropped``, ``anchor_dropped``).
    """
    anchor_dropped = 0
    if hull:
        anchor, anchor_dropped = _hull_curve(anchor)
    r0, p0, s0 = _curve_arrays(anchor)
    rows = []
    for cur in curves:
        dropped = 0
        if hull:
            cur, dropped = _hull_curve(cur)
        r, p, s = _curve_arrays(cur)
        row: dict[str, Any] = {"name": cur["name"], "config": cur.get("config", {})}
        if hull:
            row.update(dropped=dropped, anchor_dropped=anchor_dropped)
        row["bd_psnr"] = bd_psnr(r0, p0, r, p)
        row["bd_sa"] = -bd_psnr(r0, -s0, r, -s)
        try:
            row["bd_rate"] = bd_rate(r0, p0, r, p)
        except ValueError:
            row["bd_rate"] = float("nan")  # PSNR ranges do not overlap
        rows.append(row)
    return rows


def select_best(rows: Sequence[dict[str, Any]], metric: str = "bd_psnr") -> dict[str, Any]:
    """Argmax of BD-PSNR (or argmin of BD-SA / BD-rate)."""
    if not rows:
        raise ValueError("no configurations to select from")
    if metric == "bd_psnr":
        return max(rows, key=lambda r: r["bd_psnr"])
    if metric in {"bd_sa", "bd_rate"}:
        return min(rows, key=lambda r: r[metric])
    raise ValueError(f"selection metric must be bd_psnr, bd_sa or bd_rate, got {metric!r}")


def markdown_table(rows: Sequence[dict[str, Any]], best: dict[str, Any]) -> str:
    """Render the selection table (S, N, M from each config) as Markdown."""
    lines = [
        "| configuration | S | N | M | BD-PSNR (dB) | BD-SA (deg) | BD-rate (%) | selected |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = r["config"]
        lines.append(
            f"| {r['name']} | {c.get('num_stages', '-')} | {c.get('width', c.get('N', '-'))} | "
            f"{c.get('latent_channels', c.get('M', '-'))} | {r['bd_psnr']:+.3f} | {r['bd_sa']:+.4f} | "
            f"{r['bd_rate']:+.2f} | {'**yes**' if r is best else ''} |"
        )
    return "\n".join(lines) + "\n"


def plot_rd(curves: Sequence[dict[str, Any]], path: str | Path, title: str = "rate-distortion") -> Path:
    """Write PSNR-vs-bpppc and SA-vs-bpppc plots of all curves to a PNG (atomic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for cur in curves:
        r, p, s = _curve_arrays(cur)
        axes[0].plot(r, p, "o-", label=cur["name"])
        axes[1].plot(r, s, "o-", label=cur["name"])
    axes[0].set(xlabel="bpppc (real bitstream)", ylabel="PSNR (dB)", xscale="log", title=title)
    axes[1].set(xlabel="bpppc (real bitstream)", ylabel="spectral angle (deg)", xscale="log")
    axes[0].legend(fontsize=8)
    axes[0].grid(True, alpha=0.3)
    axes[1].grid(True, alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2))
    return Path(path)


def read_curve(path: str | Path) -> dict[str, Any]:
    """Read an RD-curve JSON written by ``hyvic rd``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"RD curve file not found: {path}")
    try:
        curve = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}: not valid JSON ({err})") from err
    for key in ("name", "points"):
        if key not in curve:
            raise DataFormatError(f"{path}: key {key!r} absent; expected an RD curve written by `hyvic rd`")
    return dict(curve)


__all__ = [
    "bd_table",
    "markdown_table",
    "plot_rd",
    "rd_curve",
    "rd_point",
    "read_curve",
    "select_best",
    "write_json",
]
