"""RD evaluation with real bitstreams (``hyvic rd``) and metric-driven selection (``hyvic select``)."""

from __future__ import annotations

import json
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
from rsim.core.metrics import bd_psnr, bd_rate, psnr, spectral_angle
from rsim.hyvic.checkpoint import model_architecture, model_config
from rsim.hyvic.codec import compress_source, decode_to_array, default_scale, open_source, quantised_forward


def rd_point(
    model: CompressionModel,
    input_path: str | Path,
    *,
    tile: int = 256,
    grid: int = 10,
    scale: float | None = None,
) -> dict[str, float]:
    """Code one image with one model and measure PSNR, SA, bitstream and likelihood bpppc, CR and times."""
    with open_source(input_path, grid=grid) as src, tempfile.TemporaryDirectory() as tmp:
        scale = float(scale if scale is not None else default_scale(src.dtype))
        x = np.clip(src.read(0, 0, src.shape[1], src.shape[2]).astype(np.float32) / scale, 0, 1)
        stats = compress_source(model, src, Path(tmp) / "x.hyv", tile=tile, scale=scale)
        t0 = time.perf_counter()
        x_hat, _ = decode_to_array(model, Path(tmp) / "x.hyv")
        dec_s = time.perf_counter() - t0
        _, lik_bits = quantised_forward(model, src, tile=tile, scale=scale)
    xt, xh = torch.from_numpy(x)[None], torch.from_numpy(x_hat)[None]
    c, h, w = x.shape
    return {
        "bpppc": stats.bpppc,
        "bpppc_likelihood": lik_bits / (c * h * w),
        "cr": stats.compression_ratio,
        "psnr": float(psnr(xh, xt)),
        "sa": float(spectral_angle(xh, xt)),
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
) -> dict[str, Any]:
    """RD points of several models (one per rate) sorted by rate: ``{"name", "config", "points"}``."""
    points: list[dict[str, Any]] = []
    for label, model in models:
        p = rd_point(model, input_path, tile=tile, grid=grid, scale=scale)
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


def _curve_arrays(curve: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pts = curve.get("points")
    if not pts:
        raise DataFormatError(f"RD curve {curve.get('name')!r} has no points")
    return (
        np.array([p["bpppc"] for p in pts]),
        np.array([p["psnr"] for p in pts]),
        np.array([p["sa"] for p in pts]),
    )


def bd_table(curves: Sequence[dict[str, Any]], anchor: dict[str, Any]) -> list[dict[str, Any]]:
    """BD-PSNR (dB), BD-SA (degrees, negative = better) and BD-rate (%) of each curve against ``anchor``.

    BD-SA uses the Bjøntegaard integral on -SA (so SA must fall as rate grows) and reports
    ``SA_test - SA_ref``.
    """
    r0, p0, s0 = _curve_arrays(anchor)
    rows = []
    for cur in curves:
        r, p, s = _curve_arrays(cur)
        row: dict[str, Any] = {"name": cur["name"], "config": cur.get("config", {})}
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
