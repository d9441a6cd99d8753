"""Scene generator writing the RML_indoor dataset layout: random rooms, multi-wall path loss, perturbed copies.

The paper simulates with a commercial ray tracer; this generator uses an established empirical indoor model instead:
COST-231 multi-wall / ITU-R P.1238 style path gain ``PG = -(10·n·log10 d + 20·log10 f − 147.55) − Σ L_i``, where the
sum runs over every wall or object a straight Tx→Rx ray enters, traced in 3-D through the voxelised scene (vectorised
in torch, all Rx cells and all Tx at once). ``L_i`` is the normal-incidence loss of a lossy dielectric slab
(two-interface reflection loss + absorption ``8.686·α·t`` with ``α = σ/2·η0/√εr``), capped per material at
``max_crossing_loss_db`` (COST-231 / P.1238-like per-wall values; [assumption]).

Rooms are rectilinear (rectangular or L-shaped), so every item is an axis-aligned box; walls are the room outline
dilated by the wall thickness.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from rsim.core.io import atomic_path
from rsim.radiomap.data.layout import PL_MAX, PL_TRNC, PROPERTY_NAMES, db_to_gray, split_file_name

__all__ = [
    "MATERIALS",
    "Box",
    "GeneratorConfig",
    "Scene",
    "generate_dataset",
    "path_gain_db",
    "perturb_scene",
    "rasterize",
    "sample_scene",
    "valid_cells",
]

ETA0 = 376.730313668  # free-space impedance (Ω)
CLASS_ID = {"free": 0, "concrete": 1, "drywall": 1, "wood": 2, "metal": 3, "glass": 4}
#: material ranges (εr, σ in S/m, thickness in m) from the paper's generator configuration [code]
MATERIALS: dict[str, dict[str, tuple[float, float]]] = {
    "concrete": {"eps": (4.9, 9.0), "sigma": (0.1, 0.6), "thick": (0.2, 0.5)},
    "drywall": {"eps": (2.0, 3.0), "sigma": (0.005, 0.05), "thick": (0.1, 0.15)},
    "wood": {"eps": (1.0, 5.0), "sigma": (0.002, 0.8), "thick": (0.02, 0.05)},
    "glass": {"eps": (4.0, 7.0), "sigma": (0.001, 0.01), "thick": (0.005, 0.02)},
    "metal": {"eps": (1.0, 1.0), "sigma": (1.3e6, 6e7), "thick": (0.001, 0.005)},
}
PROPERTY_SCALE = {"conductivity_log10_max": math.log10(6e7 + 1.0), "permittivity_max": 10.0, "thickness_max": 0.5}


@dataclass
class GeneratorConfig:
    """Everything that defines a generated dataset (written to ``generator_config.json``)."""

    raster_size: int = 256
    extent_m: float = 9.6
    heights: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(29))
    map_size: int = 32
    rx_height: float = 1.0
    room_height: float = 2.76
    side_range: tuple[float, float] = (5.0, 9.6)
    l_shape_prob: float = 0.5
    n_tx: int = 5
    tx_height: tuple[float, float] = (0.5, 2.5)
    frequency_hz: float = 5.82e9
    distance_exponent: float = 2.0
    max_crossing_loss_db: dict[str, float] = field(
        default_factory=lambda: {"concrete": 20.0, "drywall": 8.0, "wood": 6.0, "glass": 6.0, "metal": 30.0}
    )
    hidden_plates: bool = True
    samples_per_pixel: float = 1.0
    n_copies: int = 10
    severities: tuple[float, ...] = (0.25, 0.5, 1.0)
    perturb_materials: bool = False
    write_properties: bool = False
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_by: str = "env"
    seed: int = 0
    backend: str = "multiwall"  #: "multiwall" (built in) or "sionna" (Sionna RT ray tracing, optional install)
    sionna_max_depth: int = 5
    sionna_samples_per_tx: int = 10**6


@dataclass
class Box:
    """Axis-aligned box ``[x0, x1] × [y0, y1] × [z0, z1]`` (m) of one material."""

    x0: float
    y0: float
    x1: float
    y1: float
    z0: float
    z1: float
    material: str
    eps: float
    sigma: float
    thick: float
    kind: str = "free"  #: "free" (moved by up to r), "wall" (slid along its wall), "fixed"
    axis: int = 0  #: for wall items: 0 = slides along x, 1 = along y
    lo: float = 0.0  #: for wall items: allowed slide range of the lower edge
    hi: float = 0.0
    hidden: bool = False  #: simulated but absent from the rasters (the paper's small metal plates)

    @property
    def loss_db(self) -> float:
        """Normal-incidence slab loss (dB) of this box's material."""
        n = math.sqrt(self.eps)
        refl = ((n - 1.0) / (n + 1.0)) ** 2
        alpha = self.sigma / 2.0 * ETA0 / n
        return 8.686 * alpha * self.thick - 20.0 * math.log10(max(1.0 - refl, 1e-3))


@dataclass
class Scene:
    """One room: interior rectangles (union), wall material/thickness, boxes, Tx positions ``[n_tx, 3]``."""

    interior: list[tuple[float, float, float, float]]
    wall: Box
    boxes: list[Box] = field(default_factory=list)
    tx: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 3)))


def _material(rng: np.random.Generator, name: str) -> dict[str, Any]:
    r = MATERIALS[name]
    return {"material": name, "eps": float(rng.uniform(*r["eps"])), "sigma": float(rng.uniform(*r["sigma"])),
            "thick": float(rng.uniform(*r["thick"]))}  # fmt: skip


def _inside(scene: Scene, x: float, y: float, margin: float = 0.0) -> bool:
    return any(a + margin <= x <= b - margin and c + margin <= y <= d - margin for a, c, b, d in scene.interior)


def _box_inside(scene: Scene, b: Box) -> bool:
    return all(_inside(scene, x, y) for x in (b.x0, b.x1) for y in (b.y0, b.y1))


def _overlap(a: Box, b: Box) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _segments(interior: list[tuple[float, float, float, float]]) -> list[tuple[float, float, float, float, int]]:
    """Wall segments of the outline ``(x0, y0, x1, y1, outward)``; ``outward`` is ±1 along the segment's normal axis.

    ``interior`` is one rectangle, or the L-shape ``[(a, c, b, d2), (a, d2, e, f)]`` written by :func:`sample_scene`.
    """
    a, c, b, d = interior[0]
    if len(interior) == 1:
        return [(a, c, b, c, -1), (a, d, b, d, 1), (a, c, a, d, -1), (b, c, b, d, 1)]
    _, d2, e, f = interior[1]
    return [(a, c, b, c, -1), (a, f, e, f, 1), (e, d2, b, d2, 1), (a, c, a, f, -1), (b, c, b, d2, 1), (e, d2, e, f, 1)]


def sample_scene(rng: np.random.Generator, cfg: GeneratorConfig) -> Scene:
    """Draw one random room (rectangular or L-shaped) with walls, wall items, furniture and ``n_tx`` transmitters."""
    wall = _material(rng, "concrete" if rng.random() < 0.5 else "drywall")
    t = wall["thick"]
    sx, sy = (float(rng.uniform(*cfg.side_range)) for _ in range(2))
    a, c, b, d = t, t, sx - t, sy - t
    interior = [(a, c, b, d)]
    if rng.random() < cfg.l_shape_prob:  # L-shape: cut the right part of the bottom band off
        cut_y = float(rng.uniform(0.35, 0.65)) * (d - c)
        cut_x = float(rng.uniform(0.35, 0.65)) * (b - a)
        e, f = b - cut_x, d
        interior = [(a, c, b, d - cut_y), (a, d - cut_y, e, f)]
    scene = Scene(interior=interior, wall=Box(0, 0, sx, sy, 0.0, cfg.room_height, kind="fixed", **wall))
    segs = _segments(interior)

    def wall_item(name: str, width: float, z0: float, z1: float, depth: float | None, hidden: bool = False) -> None:
        for _ in range(20):
            x0, y0, x1, y1, out = segs[int(rng.integers(len(segs)))]
            horizontal = y0 == y1
            lo, hi = (min(x0, x1), max(x0, x1)) if horizontal else (min(y0, y1), max(y0, y1))
            if hi - lo < width + 0.2:
                continue
            s = float(rng.uniform(lo + 0.1, hi - 0.1 - width))
            pos = y0 if horizontal else x0
            # depth None: inside the wall band (windows, doors); else: mounted on the inner face
            n0, n1 = (pos, pos + out * t) if depth is None else (pos - out * depth, pos)
            n0, n1 = min(n0, n1), max(n0, n1)
            m = _material(rng, name if name != "plate" else "metal")
            bx = (Box(s, n0, s + width, n1, z0, z1, kind="wall", axis=0, lo=lo + 0.1, hi=hi - 0.1, hidden=hidden, **m)
                  if horizontal else
                  Box(n0, s, n1, s + width, z0, z1, kind="wall", axis=1, lo=lo + 0.1, hi=hi - 0.1, hidden=hidden,
                      **m))  # fmt: skip
            if depth is not None and any(_overlap(bx, o) for o in scene.boxes if o.kind == "wall"):
                continue
            scene.boxes.append(bx)
            return

    wall_item("wood", 0.9, 0.0, 2.1, None)  # door
    for _ in range(int(rng.integers(2, 11))):
        wall_item("glass", float(rng.uniform(0.6, 1.5)), 0.9, 2.2, None)  # windows
    for _ in range(int(rng.integers(3, 6))):
        wall_item("metal", float(rng.uniform(0.6, 1.2)), 0.2, 0.8, 0.1)  # radiators
    for _ in range(int(rng.integers(0, 3))):
        wall_item("wood", float(rng.uniform(0.8, 2.0)), 0.0, 2.0, 0.45)  # cabinets
    for _ in range(int(rng.integers(1, 3))):
        wall_item("wood", float(rng.uniform(1.0, 2.5)), 0.9, 2.0, 0.03)  # whiteboards / blackboards
    for _ in range(int(rng.integers(3, 16))):
        wall_item("plate", float(rng.uniform(0.1, 0.4)), float(rng.uniform(0.0, 2.0)) // 0.1 * 0.1, 2.4, 0.01,
                  hidden=cfg.hidden_plates)  # fmt: skip

    def free_item(name: str, w: float, h: float, z0: float, z1: float) -> None:
        for _ in range(100):
            x = float(rng.uniform(a, max(a, max(r[2] for r in interior) - w)))
            y = float(rng.uniform(c, max(c, max(r[3] for r in interior) - h)))
            bx = Box(x, y, x + w, y + h, z0, z1, kind="free", **_material(rng, name))
            if _box_inside(scene, bx) and not any(_overlap(bx, o) for o in scene.boxes if not o.hidden):
                scene.boxes.append(bx)
                return

    for _ in range(int(rng.integers(2, 9))):  # table-chair groups: table top + chair
        free_item("wood", float(rng.uniform(1.2, 1.8)), 0.8, 0.7, 0.75)
        free_item("wood", 0.5, 0.5, 0.0, 0.9)
    for _ in range(int(rng.integers(2, 9))):
        free_item("wood", 0.5, 0.5, 0.0, 0.9)  # chairs
    for _ in range(int(rng.integers(2, 5))):
        free_item("metal", 0.6, 0.6, 2.6, cfg.room_height)  # ceiling lamps
    for _ in range(int(rng.integers(1, 3))):
        free_item("wood", 1.5, 0.3, 0.0, 2.0)  # free-standing whiteboards
    txs: list[tuple[float, float, float]] = []
    while len(txs) < cfg.n_tx:
        x, y = float(rng.uniform(a, max(r[2] for r in interior))), float(rng.uniform(c, max(r[3] for r in interior)))
        if _inside(scene, x, y, margin=0.3):
            txs.append((x, y, float(rng.uniform(*cfg.tx_height))))
    scene.tx = np.asarray(txs, dtype=np.float64)
    return scene


def perturb_scene(scene: Scene, rng: np.random.Generator, radius: float, *, materials: bool = False) -> Scene:
    """Perturbed copy: free objects and each Tx moved by U(0, r) in a uniform direction (≤100 tries to stay inside
    and not overlap), wall items slid along their wall by U(−r, r), materials optionally re-sampled.

    With ``materials``, every item keeps its material type (so the class rasters are unchanged) but draws new
    εr, σ and thickness from :data:`MATERIALS`; the walls draw new εr and σ and keep their thickness (the wall band
    is geometry).
    """  # noqa: D205
    wall = replace(scene.wall)
    if materials:
        m = _material(rng, scene.wall.material)
        wall = replace(wall, eps=m["eps"], sigma=m["sigma"])
    out = Scene(interior=list(scene.interior), wall=wall, boxes=[], tx=scene.tx.copy())
    moved: list[Box] = []
    for b in scene.boxes:
        nb = replace(b)
        if materials and b.kind != "fixed":
            nb = replace(nb, **_material(rng, b.material))
        if b.kind == "wall":
            w = (b.x1 - b.x0) if b.axis == 0 else (b.y1 - b.y0)
            start = b.x0 if b.axis == 0 else b.y0
            new = float(np.clip(start + rng.uniform(-radius, radius), b.lo, max(b.lo, b.hi - w)))
            nb = replace(nb, x0=new, x1=new + w) if b.axis == 0 else replace(nb, y0=new, y1=new + w)
        elif b.kind == "free":
            for _ in range(100):
                r, phi = rng.uniform(0, radius), rng.uniform(0, 2 * math.pi)
                dx, dy = r * math.cos(phi), r * math.sin(phi)
                cand = replace(nb, x0=b.x0 + dx, x1=b.x1 + dx, y0=b.y0 + dy, y1=b.y1 + dy)
                if _box_inside(out, cand) and not any(_overlap(cand, o) for o in moved if o.kind == "free"):
                    nb = cand
                    break
        moved.append(nb)
    out.boxes = moved
    for i, (x, y, z) in enumerate(scene.tx):
        for _ in range(100):
            r, phi = rng.uniform(0, radius), rng.uniform(0, 2 * math.pi)
            nx, ny = x + r * math.cos(phi), y + r * math.sin(phi)
            if _inside(out, nx, ny, margin=0.05):
                out.tx[i] = (nx, ny, z)
                break
    return out


def _interior_mask(scene: Scene, n: int, px: float) -> NDArray[np.bool_]:
    centres = (np.arange(n) + 0.5) * px
    xx, yy = np.meshgrid(centres, centres)  # rows = y, columns = x
    m = np.zeros((n, n), dtype=bool)
    for a, c, b, d in scene.interior:
        m |= (xx > a) & (xx < b) & (yy > c) & (yy < d)
    return m


def rasterize(
    scene: Scene, cfg: GeneratorConfig, *, include_hidden: bool = False
) -> tuple[NDArray[np.int16], list[Box]]:
    """Voxelise the scene: ``ids[height, row(y), col(x)]`` (0 free, 1 wall, k+2 = ``boxes[k]``) and the id table."""
    from scipy.ndimage import maximum_filter

    n, px = cfg.raster_size, cfg.extent_m / cfg.raster_size
    interior = _interior_mask(scene, n, px)
    tp = max(1, round(scene.wall.thick / px))
    wall2d = maximum_filter(interior, size=2 * tp + 1) & ~interior
    heights = np.asarray(cfg.heights)
    ids = np.zeros((len(heights), n, n), dtype=np.int16)
    table = [scene.wall, scene.wall]
    ids[heights <= cfg.room_height] = np.where(wall2d, 1, 0)[None]
    for k, b in enumerate(scene.boxes):
        table.append(b)
        if b.hidden and not include_hidden:
            continue
        hs = (heights >= b.z0 - 1e-6) & (heights <= b.z1 + 1e-6)
        c0, c1 = int(np.floor(b.x0 / px)), int(np.ceil(b.x1 / px))
        r0, r1 = int(np.floor(b.y0 / px)), int(np.ceil(b.y1 / px))
        c0, r0 = max(c0, 0), max(r0, 0)
        if c1 <= c0 or r1 <= r0:
            continue
        ids[hs, r0:r1, c0:c1] = k + 2
    return ids, table


def _channels(ids: NDArray[np.int16], table: list[Box]) -> dict[str, NDArray[np.uint8]]:
    cls = np.array([0] + [CLASS_ID[b.material] for b in table[1:]], dtype=np.uint8)
    sig = np.array([0.0] + [math.log10(b.sigma + 1) for b in table[1:]]) / PROPERTY_SCALE["conductivity_log10_max"]
    eps = np.array([0.0] + [b.eps for b in table[1:]]) / PROPERTY_SCALE["permittivity_max"]
    thk = np.array([0.0] + [b.thick for b in table[1:]]) / PROPERTY_SCALE["thickness_max"]
    out = {"classes": cls[ids]}
    for name, lut in zip(PROPERTY_NAMES, (sig, eps, thk), strict=True):
        out[name] = np.round(np.clip(lut, 0, 1) * 255).astype(np.uint8)[ids]
    return out


def path_gain_db(scene: Scene, cfg: GeneratorConfig) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Multi-wall path gain (dB, unclipped) ``[n_tx, map, map]`` on the Rx grid and the valid-cell mask ``[map, map]``.

    Every Tx→Rx ray is sampled at half the raster pixel in 3-D; each entry into a new wall/object voxel region adds
    that object's slab loss. Hidden items (metal plates) take part.
    """
    ids_np, table = rasterize(scene, cfg, include_hidden=True)
    n, px, m = cfg.raster_size, cfg.extent_m / cfg.raster_size, cfg.map_size
    cell = cfg.extent_m / m
    caps = cfg.max_crossing_loss_db
    loss = torch.tensor([0.0] + [min(b.loss_db, caps[b.material]) for b in table[1:]], dtype=torch.float32)
    ids = torch.from_numpy(ids_np).flatten()
    c = (torch.arange(m, dtype=torch.float64) + 0.5) * cell
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    rx = torch.stack([xx.flatten(), yy.flatten(), torch.full((m * m,), cfg.rx_height, dtype=torch.float64)], -1)
    tx = torch.from_numpy(scene.tx)
    n_samples = math.ceil(math.sqrt(2.0) * n * cfg.samples_per_pixel)
    s = torch.linspace(0.0, 1.0, n_samples, dtype=torch.float32)
    tx32, rx32 = tx.float(), rx.float()
    pts = tx32[:, None, None, :] + s[None, None, :, None] * (rx32[None, :, None, :] - tx32[:, None, None, :])
    col = (pts[..., 0] / px).floor().clamp(0, n - 1).int()
    row = (pts[..., 1] / px).floor().clamp(0, n - 1).int()
    hz = (pts[..., 2] / (cfg.heights[1] - cfg.heights[0])).round().clamp(0, len(cfg.heights) - 1).int()
    hit = ids[((hz * n + row) * n + col).long()]  # [T, R, S] voxel ids along each ray
    entry = (hit[..., 1:] != hit[..., :-1]) & (hit[..., 1:] > 0)
    walls = (entry * loss[hit[..., 1:].long()]).sum(-1).double()
    d = (rx[None] - tx[:, None]).norm(dim=-1).clamp_min(0.1)
    fspl = 10.0 * cfg.distance_exponent * torch.log10(d) + 20.0 * math.log10(cfg.frequency_hz) - 147.55
    gain = -(fspl + walls)
    return gain.reshape(len(tx), m, m).numpy(), valid_cells(scene, cfg)


def valid_cells(scene: Scene, cfg: GeneratorConfig) -> NDArray[np.bool_]:
    """Rx cells ``[map, map]`` whose centre lies inside the room (rows = y, columns = x)."""
    m = cfg.map_size
    cx = (np.arange(m, dtype=np.float64) + 0.5) * cfg.extent_m / m
    valid = np.zeros((m, m), dtype=bool)
    for a, cc, b, dd in scene.interior:
        valid |= (cx[None, :] > a) & (cx[None, :] < b) & (cx[:, None] > cc) & (cx[:, None] < dd)
    return valid


def encode_map(gain_db: NDArray[np.float64], valid: NDArray[np.bool_]) -> NDArray[np.uint8]:
    """Grey PNG values: clipped to −71…−12 dB; valid cells at the floor are stored as 1 so that 0 means "outside"."""
    g = db_to_gray(gain_db)
    return np.where(valid, np.maximum(g, 1), 0).astype(np.uint8)


def _write_png(path: Path, arr: NDArray[np.uint8]) -> None:
    from PIL import Image

    Image.fromarray(arr, mode="L").save(path, compress_level=1)


def _height_names(cfg: GeneratorConfig) -> list[str]:
    return [f"{h:.1f}" for h in cfg.heights]


def _write_env(prefix: Path, scene: Scene, cfg: GeneratorConfig) -> None:
    ids, table = rasterize(scene, cfg)
    chans = _channels(ids, table)
    names = ["classes", *PROPERTY_NAMES] if cfg.write_properties else ["classes"]
    for i, h in enumerate(_height_names(cfg)):
        for name in names:
            _write_png(Path(f"{prefix}_height{h}_{name}.png"), chans[name][i])
    tx = {str(i): [round(float(v), 4) for v in p] for i, p in enumerate(scene.tx)}
    Path(f"{prefix}_tx.json").write_text(json.dumps(tx))


def severity_dir(severity: float) -> str:
    """Folder name of the copies of one severity (``sev0.25``, ``sev0.5``, ``sev1``)."""
    return f"sev{severity:g}"


def generate_room(env: int, root: Path, cfg: GeneratorConfig) -> int:
    """Write room ``env`` (rasters, Tx JSON, ``n_tx`` maps, copies per severity); skip if already complete."""
    done = root / "environments" / f"project{env}.done"
    if done.is_file():
        return 0
    rng = np.random.default_rng([cfg.seed, env])
    scene = sample_scene(rng, cfg)
    _write_env(root / "environments" / f"project{env}", scene, cfg)
    if cfg.backend == "sionna":
        import tempfile

        from rsim.radiomap.sionna_backend import sionna_path_gain_db

        with tempfile.TemporaryDirectory(dir=root) as tmp:
            gain, valid = sionna_path_gain_db(scene, cfg, tmp, max_depth=cfg.sionna_max_depth,
                                              samples_per_tx=cfg.sionna_samples_per_tx, seed=env)  # fmt: skip
    else:
        gain, valid = path_gain_db(scene, cfg)
    for t in range(len(scene.tx)):
        _write_png(root / "radio_maps" / f"project{env}-{t}.png", encode_map(gain[t], valid))
    for si, sev in enumerate(cfg.severities):
        for k in range(cfg.n_copies):
            prng = np.random.default_rng([cfg.seed, env, si, k, 1])
            copy = perturb_scene(scene, prng, sev, materials=cfg.perturb_materials)
            _write_env(root / "perturbed" / severity_dir(sev) / f"project{env}_copy{k}", copy, cfg)
    with atomic_path(done) as tmp:
        tmp.write_text("ok\n")
    return 1


def _write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1))


def write_metadata(root: Path, cfg: GeneratorConfig, n_rooms: int) -> None:
    """Write the parameter JSONs and the split file (80/10/10 over rooms or over [env, tx] pairs)."""
    _write_json(root / "rasterization_parameters.json", {
        "raster_size": cfg.raster_size, "extent_m": cfg.extent_m, "heights_m": list(cfg.heights),
        "height_names": _height_names(cfg), "n_classes": 5, "classes": ["free", "concrete/drywall", "wood", "metal",
        "glass"], "property_scaling": PROPERTY_SCALE, "room_height_m": cfg.room_height})  # fmt: skip
    _write_json(root / "rm_processing_parameters.json", {
        "map_size": cfg.map_size, "cell_m": cfg.extent_m / cfg.map_size, "pl_trnc": PL_TRNC, "pl_max": PL_MAX,
        "rx_height_m": cfg.rx_height, "frequency_hz": cfg.frequency_hz, "invalid_value": 0})  # fmt: skip
    _write_json(root / "generator_config.json", asdict(cfg))
    rng = np.random.default_rng([cfg.seed, 10**6])
    pairs = [(e, t) for e in range(n_rooms) for t in range(cfg.n_tx)]
    units = list(range(n_rooms)) if cfg.split_by == "env" else list(range(len(pairs)))
    order = rng.permutation(len(units))
    n_val = max(1, round(cfg.val_fraction * len(units))) if len(units) >= 3 else 0
    n_test = max(1, round(cfg.test_fraction * len(units))) if len(units) >= 3 else 0
    part = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
    split: dict[str, list[list[int]]] = {}
    for name, idx in part.items():
        sel = sorted(int(i) for i in idx)
        if cfg.split_by == "env":
            split[name] = [[e, t] for e in sel for t in range(cfg.n_tx)]
        else:
            split[name] = [list(pairs[i]) for i in sel]
    _write_json(root / split_file_name(cfg.val_fraction, cfg.test_fraction), split)


def generate_dataset(
    root: str | Path,
    n_rooms: int,
    cfg: GeneratorConfig | None = None,
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    processes: bool = True,
    show_progress: bool = True,
) -> int:
    """Generate ``n_rooms`` rooms into ``root`` with Dask (resumable: finished rooms are skipped).

    Returns:
        Number of rooms written by this call.
    """
    from rsim.core.parallel import dask_client, map_with_progress

    cfg = cfg or GeneratorConfig()
    if cfg.backend not in ("multiwall", "sionna"):
        raise ValueError(f"backend must be 'multiwall' or 'sionna', got {cfg.backend!r}")
    if cfg.backend == "sionna":
        from rsim.radiomap.sionna_backend import sionna_available

        if not sionna_available():
            raise ValueError("backend 'sionna' needs Sionna RT (pip install sionna-rt), which is not installed")
    root = Path(root)
    for sub in ["environments", "radio_maps", *(f"perturbed/{severity_dir(s)}" for s in cfg.severities)]:
        (root / sub).mkdir(parents=True, exist_ok=True)
    old = root / "generator_config.json"
    if old.is_file():
        # fields added in later versions count with their defaults, so older datasets stay resumable
        prev = {**json.loads(json.dumps(asdict(GeneratorConfig()))), **json.loads(old.read_text())}
        cur = json.loads(json.dumps(asdict(cfg)))
        if prev != cur:
            raise ValueError(f"{old}: existing dataset was generated with a different configuration; use a new folder")
    else:
        _write_json(old, asdict(cfg))
    with dask_client(scheduler, n_workers=n_workers, processes=processes) as client:
        written = map_with_progress(partial(generate_room, root=root, cfg=cfg), range(n_rooms), client=client,
                                    description=f"generating {n_rooms} rooms", show_progress=show_progress)  # fmt: skip
    write_metadata(root, cfg, n_rooms)
    return int(sum(written))
