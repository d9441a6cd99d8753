"""Sionna RT backend: scene export (always tested) and the import guard / the solver when Sionna is installed."""

import itertools
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from rsim.radiomap.generator import GeneratorConfig, _segments, generate_dataset, path_gain_db, sample_scene
from rsim.radiomap.sionna_backend import (
    box_mesh,
    sionna_available,
    sionna_path_gain_db,
    solid_boxes,
    write_mitsuba_scene,
)

CFG = GeneratorConfig()


def _scenes():
    """One rectangular and one L-shaped room."""
    found = {}
    for seed in range(40):
        s = sample_scene(np.random.default_rng([9, seed]), CFG)
        found.setdefault(len(s.interior), s)
        if len(found) == 2:
            return [found[1], found[2]]
    raise AssertionError("no rectangular + L-shaped pair in 40 seeds")


def _vol(b):
    return max(0.0, b.x1 - b.x0) * max(0.0, b.y1 - b.y0) * max(0.0, b.z1 - b.z0)


def _overlap_vol(a, b):
    dx = min(a.x1, b.x1) - max(a.x0, b.x0)
    dy = min(a.y1, b.y1) - max(a.y0, b.y0)
    dz = min(a.z1, b.z1) - max(a.z0, b.z0)
    return max(0.0, dx) * max(0.0, dy) * max(0.0, dz)


@pytest.mark.parametrize("kind", [0, 1], ids=["rectangular", "L-shaped"])
def test_solids_fill_the_wall_ring_without_overlap(kind):
    scene = _scenes()[kind]
    h = CFG.room_height
    solids = solid_boxes(scene, h)
    assert all(_vol(b) > 0 for b in solids)
    worst = max(_overlap_vol(a, b) for a, b in itertools.combinations(solids, 2))
    assert worst < 1e-6
    t = scene.wall.thick
    perimeter = sum(abs(x1 - x0) + abs(y1 - y0) for x0, y0, x1, y1, _ in _segments(scene.interior))
    ring = perimeter * t + 4 * t * t  # rectilinear outline dilated with square corners
    in_ring = [b for b in solids if b.kind in ("fixed", "wall") and not _inside_any(scene, b)]
    assert sum(_vol(b) for b in in_ring) == pytest.approx(ring * h, rel=1e-6)
    assert any(b.material == "glass" for b in in_ring)  # windows replace the wall where they sit
    movable = [b for b in scene.boxes if _inside_any(scene, b)]  # furniture, wall-mounted items
    assert len(movable) > 10
    assert all(any(_same_box(b, s) for s in solids) for b in movable)  # every other object is exported as is


def _inside_any(scene, b):
    cx, cy = (b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2
    return any(a < cx < c and d < cy < e for a, d, c, e in scene.interior)


def _same_box(a, b):
    return (a.x0, a.y0, a.x1, a.y1, a.z0, a.z1, a.material) == (b.x0, b.y0, b.x1, b.y1, b.z0, b.z1, b.material)


def test_box_mesh_is_closed_and_outward():
    scene = _scenes()[0]
    b = scene.boxes[0]
    v, f = box_mesh(b)
    assert v.shape == (8, 3) and f.shape == (12, 3)
    edges: dict[tuple[int, int], int] = {}
    for tri in f:
        for i in range(3):
            e = tuple(sorted((int(tri[i]), int(tri[(i + 1) % 3]))))
            edges[e] = edges.get(e, 0) + 1
    assert set(edges.values()) == {2}  # every edge shared by two triangles: closed surface
    centre = v.mean(0)
    for tri in f:
        p = v[tri]
        n = np.cross(p[1] - p[0], p[2] - p[0])
        assert np.linalg.norm(n) > 0 and np.dot(n, p.mean(0) - centre) > 0


def test_mitsuba_scene_export(tmp_path):
    scene = _scenes()[1]
    xml = write_mitsuba_scene(scene, CFG, tmp_path / "sc")
    root = ET.parse(xml).getroot()
    shapes, bsdfs = root.findall("shape"), root.findall("bsdf")
    assert len(shapes) == len(bsdfs) == len(solid_boxes(scene, CFG.room_height)) + 2  # + floor and ceiling
    for shape, bsdf in zip(shapes, bsdfs, strict=True):
        assert bsdf.get("type") == "radio-material"
        props = {p.get("name"): float(p.get("value")) for p in bsdf.findall("float")}
        assert set(props) == {"relative_permittivity", "conductivity", "thickness"} and props["thickness"] > 0
        ply = (xml.parent / shape.find("string").get("value")).read_text()
        assert "element vertex 8" in ply and "element face 12" in ply
    assert any(s.get("id").endswith("-metal") for s in shapes)  # hidden plates are simulated


@pytest.mark.skipif(sionna_available(), reason="checks the error raised without Sionna RT")
def test_missing_sionna_raises_a_clear_error(tmp_path):
    with pytest.raises(ImportError, match="pip install sionna-rt"):
        sionna_path_gain_db(_scenes()[0], CFG, tmp_path)
    with pytest.raises(ValueError, match="sionna-rt"):
        generate_dataset(tmp_path / "d", 1, GeneratorConfig(backend="sionna"), show_progress=False)
    with pytest.raises(ValueError, match="backend must be"):
        generate_dataset(tmp_path / "d", 1, GeneratorConfig(backend="wi"), show_progress=False)


@pytest.mark.slow
@pytest.mark.skipif(not sionna_available(), reason="Sionna RT not installed (optional backend)")
def test_sionna_map_agrees_with_multiwall_near_the_tx(tmp_path):
    scene = _scenes()[0]
    gain, valid = sionna_path_gain_db(scene, CFG, tmp_path, max_depth=3, samples_per_tx=200_000)
    ref, ref_valid = path_gain_db(scene, CFG)
    assert gain.shape == ref.shape and np.array_equal(valid, ref_valid)
    ok = valid[None] & np.isfinite(gain)
    assert np.corrcoef(gain[ok], ref[ok])[0, 1] > 0.5  # same orientation of the grid, same trend
