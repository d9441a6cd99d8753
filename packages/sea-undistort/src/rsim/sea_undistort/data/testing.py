"""Fixture writer: a tiny dataset in the released Sea-Undistort layout (four PNGs per scene, lists, metadata)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from rsim.core.io import atomic_path

GLINT_PEAK = 120.0  # grey levels added at the glint-blob centre (the soft ramp 30..60 lies inside the blob)


@dataclass(frozen=True)
class Fixture:
    """What :func:`write_sea_undistort_fixture` wrote."""

    root: Path
    ids: list[str]
    blacklist: list[str]
    test_list: list[str]
    glint_centres: dict[str, tuple[int, int]]


def write_png(path: str | os.PathLike[str], rgb: np.ndarray) -> Path:
    """Write uint8 ``(H, W, 3)`` (or ``(H, W)``) as PNG atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
    return path


def synthetic_scene(size: int, rng: np.random.Generator) -> dict[str, np.ndarray | tuple[int, int]]:
    """One synthetic scene: seabed texture, clear-water target, wave-warped + hazy input, glint blob.

    Returns:
        ``{"": distorted, "_no_waves": target, "_no_sunglint": distorted without glint, "_ground": seabed,
        "centre": (row, col) of the glint blob}`` as uint8 ``(H, W, 3)``.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    seabed = np.zeros((size, size, 3), np.float32)
    for _ in range(4):  # a few random sinusoids per channel = a smooth sand/rock-like texture
        fx, fy, ph = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 2 * np.pi)
        seabed += rng.uniform(10, 30, size=3) * np.sin(2 * np.pi * (fx * xx + fy * yy) + ph)[..., None]
    seabed += np.array([150, 140, 100]) + rng.normal(0, 4, seabed.shape)
    water = np.array([20, 90, 110], np.float32)
    clear = 0.75 * seabed + 0.25 * water
    amp, k = rng.uniform(0.01, 0.03), rng.uniform(3, 6)
    dy = amp * np.sin(2 * np.pi * k * xx + rng.uniform(0, 6))
    dx = amp * np.cos(2 * np.pi * k * yy + rng.uniform(0, 6))
    rows = np.clip(((yy + dy) * size).astype(int), 0, size - 1)
    cols = np.clip(((xx + dx) * size).astype(int), 0, size - 1)
    warped = 0.85 * clear[rows, cols] + 0.15 * np.array([60, 120, 140])  # waves + scattering haze
    cy, cx = (int(v) for v in rng.integers(size // 4, 3 * size // 4, size=2))
    r2 = ((np.arange(size)[:, None] - cy) ** 2 + (np.arange(size)[None, :] - cx) ** 2) / (size / 6) ** 2
    glint = GLINT_PEAK * np.exp(-r2)[..., None]

    def u8(a: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)

    return {"": u8(warped + glint), "_no_waves": u8(clear), "_no_sunglint": u8(warped), "_ground": u8(seabed),
            "centre": (cy, cx)}  # fmt: skip


def write_sea_undistort_fixture(
    root: str | os.PathLike[str], *, num_scenes: int = 12, size: int = 64, seed: int = 0,
    blacklist: Sequence[str] = ("0003",), test_list: Sequence[str] = ("0005", "0003"),
) -> Fixture:  # fmt: skip
    """Write ``num_scenes`` scenes in the released flat layout.

    Writes ``render_XXXX.png``, ``_no_waves``, ``_no_sunglint``, ``_ground`` per scene, ``scene_settings.json``
    (one record per image), ``blacklist.txt`` (with a ``# strong`` header) and ``test_list.txt``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = [f"{i:04d}" for i in range(num_scenes)]
    settings: dict[str, dict[str, object]] = {}
    centres: dict[str, tuple[int, int]] = {}
    for sid in ids:
        scene = synthetic_scene(size, rng)
        for variant in ("", "_no_waves", "_no_sunglint", "_ground"):
            write_png(root / f"render_{sid}{variant}.png", scene[variant])  # type: ignore[arg-type]
        centres[sid] = scene["centre"]  # type: ignore[assignment]
        settings[f"render_{sid}"] = {
            "seabed_type": str(rng.choice(["rock", "sand", "gravel", "seagrass"])),
            "sun_elevation_deg": float(rng.uniform(25, 70)),
            "camera_altitude_m": float(rng.uniform(30, 200)),
            "mean_depth_m": float(rng.uniform(-8, -0.5)),
        }
    with atomic_path(root / "scene_settings.json") as tmp:
        tmp.write_text(json.dumps(settings, indent=2))
    with atomic_path(root / "blacklist.txt") as tmp:
        tmp.write_text("# strong\n" + "\n".join(blacklist) + "\n")
    with atomic_path(root / "test_list.txt") as tmp:
        tmp.write_text("\n".join(t.lstrip("0") or "0" for t in test_list) + "\n")  # unpadded, as zfill is applied
    return Fixture(root, ids, list(blacklist), list(test_list), centres)
