"""Optional second path-loss backend: Sionna RT (ray tracing; ``pip install sionna-rt``, not a dependency).

The generator's scenes are exported as a Mitsuba 3 scene (one closed box mesh per wall piece / object, each with its
own ``radio-material`` carrying εr, σ and thickness, plus a concrete floor and ceiling) and Sionna's
``RadioMapSolver`` computes the path gain on the same 0.3 m Rx grid at 1 m height. The export
(:func:`solid_boxes`, :func:`write_mitsuba_scene`) is plain numpy and always available; only
:func:`sionna_path_gain_db` needs Sionna RT and raises an ``ImportError`` that says how to install it otherwise.

Walls: the wall band of every outline segment becomes one box (horizontal segments own the corners), cut around the
doors and windows that sit inside the band (the wall remains below and above them); doors/windows that overlap along
the wall are clipped so that no two solids overlap.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from rsim.radiomap.generator import Box, GeneratorConfig, Scene, _inside, _segments, valid_cells

__all__ = ["box_mesh", "sionna_available", "sionna_path_gain_db", "solid_boxes", "write_mitsuba_scene"]

_EPS = 1e-6


def sionna_available() -> bool:
    """Whether ``sionna.rt`` can be imported."""
    try:
        import sionna.rt  # noqa: F401
    except ImportError:
        return False
    return True


def _wall_bands(scene: Scene) -> list[Box]:
    t = scene.wall.thick
    bands: list[Box] = []
    segs = _segments(scene.interior)
    for x0, y0, x1, y1, out in sorted(segs, key=lambda s: s[1] != s[3]):  # horizontal segments first
        if y0 == y1:
            lo, hi = min(x0, x1), max(x0, x1)
            n0, n1 = sorted((y0, y0 + out * t))
            mid = (n0 + n1) / 2
            lo -= t if not _inside(scene, lo - t / 2, mid) else 0.0  # convex corner: this band owns it
            hi += t if not _inside(scene, hi + t / 2, mid) else 0.0
            bands.append(replace(scene.wall, x0=lo, x1=hi, y0=n0, y1=n1, kind="fixed"))
        else:
            lo, hi = min(y0, y1), max(y0, y1)
            n0, n1 = sorted((x0, x0 + out * t))
            for h in bands:  # trim where a horizontal band already covers the corner
                if h.y0 == h.y1 or not (h.x0 < n1 - _EPS and n0 + _EPS < h.x1):
                    continue
                if h.y0 - _EPS <= lo < h.y1:
                    lo = h.y1
                if h.y0 < hi <= h.y1 + _EPS:
                    hi = h.y0
            if hi > lo + _EPS:
                bands.append(replace(scene.wall, x0=n0, x1=n1, y0=lo, y1=hi, kind="fixed"))
    return bands


def _in_band(item: Box, band: Box) -> bool:
    return (band.x0 - _EPS <= item.x0 and item.x1 <= band.x1 + _EPS and band.y0 - _EPS <= item.y0
            and item.y1 <= band.y1 + _EPS)  # fmt: skip


def _span(b: Box, axis: int, s: float, e: float, z0: float | None = None, z1: float | None = None) -> Box:
    z0 = b.z0 if z0 is None else z0
    z1 = b.z1 if z1 is None else z1
    return replace(b, x0=s, x1=e, z0=z0, z1=z1) if axis == 0 else replace(b, y0=s, y1=e, z0=z0, z1=z1)


def solid_boxes(scene: Scene, room_height: float) -> list[Box]:
    """Non-overlapping solids of a scene: wall pieces around in-wall items, the in-wall items, all other objects.

    Args:
        scene: Generated (or perturbed) scene.
        room_height: Wall height (m).
    """
    solids: list[Box] = []
    others = list(scene.boxes)
    for band in _wall_bands(scene):
        axis = 0 if (band.x1 - band.x0) >= (band.y1 - band.y0) else 1
        lo_b, hi_b = (band.x0, band.x1) if axis == 0 else (band.y0, band.y1)
        items = sorted((b for b in others if b.kind == "wall" and _in_band(b, band)),
                       key=lambda b: b.x0 if axis == 0 else b.y0)  # fmt: skip
        others = [b for b in others if not any(b is i for i in items)]
        cursor = lo_b
        for it in items:
            s, e = (it.x0, it.x1) if axis == 0 else (it.y0, it.y1)
            s = max(s, cursor)
            if e <= s + _EPS:
                continue  # fully covered by the previous in-wall item
            solids.append(_span(it, axis, s, e))
            if s > cursor + _EPS:
                solids.append(_span(band, axis, cursor, s, 0.0, room_height))
            if it.z0 > _EPS:
                solids.append(_span(band, axis, s, e, 0.0, it.z0))
            if it.z1 < room_height - _EPS:
                solids.append(_span(band, axis, s, e, it.z1, room_height))
            cursor = e
        if hi_b > cursor + _EPS:
            solids.append(_span(band, axis, cursor, hi_b, 0.0, room_height))
    return solids + others


def box_mesh(b: Box) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Closed triangle mesh of a box: 8 vertices ``[8, 3]`` and 12 outward-facing triangles ``[12, 3]``."""
    v = np.array([[x, y, z] for z in (b.z0, b.z1) for y in (b.y0, b.y1) for x in (b.x0, b.x1)], dtype=np.float64)
    quads = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    faces = np.array([t for a, b_, c, d in quads for t in ((a, b_, c), (a, c, d))], dtype=np.int64)
    return v, faces


def _write_ply(path: Path, v: NDArray[np.float64], f: NDArray[np.int64]) -> None:
    head = (f"ply\nformat ascii 1.0\nelement vertex {len(v)}\nproperty float x\nproperty float y\nproperty float z\n"
            f"element face {len(f)}\nproperty list uchar int vertex_indices\nend_header\n")  # fmt: skip
    body = "".join(f"{x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in v) + "".join(f"3 {a} {b} {c}\n" for a, b, c in f)
    path.write_text(head + body)


def write_mitsuba_scene(scene: Scene, cfg: GeneratorConfig, folder: str | Path, *, floor_ceiling: bool = True) -> Path:
    """Write ``scene.xml`` and one PLY per solid into ``folder``; return the XML path.

    Hidden items (the small metal plates) are included: they are simulated, only absent from the rasters.
    """
    folder = Path(folder)
    (folder / "meshes").mkdir(parents=True, exist_ok=True)
    solids = solid_boxes(scene, cfg.room_height)
    if floor_ceiling:
        sx = max(b.x1 for b in solids)
        sy = max(b.y1 for b in solids)
        slab = replace(scene.wall, material="concrete", thick=0.2, kind="fixed")
        solids.append(replace(slab, x0=0.0, y0=0.0, x1=sx, y1=sy, z0=-0.2, z1=0.0))
        solids.append(replace(slab, x0=0.0, y0=0.0, x1=sx, y1=sy, z0=cfg.room_height, z1=cfg.room_height + 0.2))
    parts = ['<scene version="2.1.0">']
    for i, b in enumerate(solids):
        v, f = box_mesh(b)
        _write_ply(folder / "meshes" / f"solid{i}.ply", v, f)
        parts += [f'  <bsdf type="radio-material" id="mat{i}">',
                  f'    <float name="relative_permittivity" value="{b.eps:.6g}"/>',
                  f'    <float name="conductivity" value="{b.sigma:.6g}"/>',
                  f'    <float name="thickness" value="{b.thick:.6g}"/>', "  </bsdf>",
                  f'  <shape type="ply" id="solid{i}-{b.material}">',
                  f'    <string name="filename" value="meshes/solid{i}.ply"/>',
                  '    <boolean name="face_normals" value="true"/>', f'    <ref id="mat{i}" name="bsdf"/>',
                  "  </shape>"]  # fmt: skip
    parts.append("</scene>\n")
    xml = folder / "scene.xml"
    xml.write_text("\n".join(parts))
    return xml


def sionna_path_gain_db(
    scene: Scene,
    cfg: GeneratorConfig,
    workdir: str | Path,
    *,
    max_depth: int = 5,
    samples_per_tx: int = 10**6,
    seed: int = 0,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Path gain (dB) ``[n_tx, map, map]`` from Sionna RT's ``RadioMapSolver`` and the valid-cell mask.

    Same contract as :func:`rsim.radiomap.generator.path_gain_db` (rows = y, columns = x, 0.3 m cells at
    ``cfg.rx_height``); cells that no ray reached get −inf dB (clipped to the floor by the PNG encoding).

    Raises:
        ImportError: Sionna RT is not installed.
    """
    try:
        import mitsuba as mi
        from sionna.rt import PlanarArray, RadioMapSolver, Transmitter, load_scene
    except ImportError as exc:
        raise ImportError(
            "the 'sionna' backend needs Sionna RT (pip install sionna-rt; it brings Mitsuba 3 and Dr.Jit and needs "
            "LLVM for CPU runs); it is optional and not a dependency of rsim-radiomap. Use backend='multiwall'."
        ) from exc
    xml = write_mitsuba_scene(scene, cfg, workdir)
    sc = load_scene(str(xml), merge_shapes=False)
    sc.frequency = cfg.frequency_hz
    sc.tx_array = PlanarArray(num_rows=1, num_cols=1, pattern="iso", polarization="V")
    sc.rx_array = PlanarArray(num_rows=1, num_cols=1, pattern="iso", polarization="V")
    for i, (x, y, z) in enumerate(scene.tx):
        sc.add(Transmitter(name=f"tx{i}", position=mi.Point3f(float(x), float(y), float(z))))
    m, cell = cfg.map_size, cfg.extent_m / cfg.map_size
    rm = RadioMapSolver()(sc, center=mi.Point3f(cfg.extent_m / 2, cfg.extent_m / 2, cfg.rx_height),
                          orientation=mi.Point3f(0.0, 0.0, 0.0), size=mi.Point2f(cfg.extent_m, cfg.extent_m),
                          cell_size=mi.Point2f(cell, cell), samples_per_tx=samples_per_tx, max_depth=max_depth,
                          seed=seed)  # fmt: skip
    gain = np.asarray(rm.path_gain.numpy(), dtype=np.float64)  # [n_tx, cells_y, cells_x]
    centres = np.asarray(rm.cell_centers.numpy(), dtype=np.float64)  # [cells_y, cells_x, 3]
    if gain.shape[1:] != (m, m):
        raise RuntimeError(f"Sionna radio map has {gain.shape[1:]} cells, expected {(m, m)}")
    if centres[0, 0, 1] > centres[-1, 0, 1]:  # make rows run along +y like the generator's grid
        gain = gain[:, ::-1]
    if centres[0, 0, 0] > centres[0, -1, 0]:
        gain = gain[:, :, ::-1]
    with np.errstate(divide="ignore"):
        gain_db = 10.0 * np.log10(gain)
    return np.ascontiguousarray(gain_db), valid_cells(scene, cfg)
