import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from rsim.radiomap.cli import main
from rsim.radiomap.data import RadioMapDataset, RadioMapLayout
from rsim.radiomap.generator import (
    MATERIALS,
    Box,
    GeneratorConfig,
    Scene,
    _channels,
    _segments,
    generate_dataset,
    path_gain_db,
    perturb_scene,
    rasterize,
    sample_scene,
)

CFG = GeneratorConfig()


def _empty_room(boxes=()):
    wall = Box(0, 0, 9.0, 9.0, 0, 2.76, material="drywall", eps=2.5, sigma=0.01, thick=0.1, kind="fixed")
    scene = Scene(interior=[(0.1, 0.1, 8.9, 8.9)], wall=wall, boxes=list(boxes))
    scene.tx = np.array([[1.05, 4.35, 1.0]])
    return scene


def test_empty_room_is_free_space():
    gain, valid = path_gain_db(_empty_room(), CFG)
    c = (np.arange(32) + 0.5) * 0.3
    yy, xx = np.meshgrid(c, c, indexing="ij")
    d = np.maximum(np.sqrt((xx - 1.05) ** 2 + (yy - 4.35) ** 2), 0.1)
    fspl = -(20 * np.log10(d) + 20 * math.log10(5.82e9) - 147.55)
    assert valid.sum() == 30 * 30  # cell centres 0.15 … 8.85 m lie inside 0.1..8.9 m
    assert np.allclose(gain[0][valid], fspl[valid], atol=1e-4)


def test_wall_between_tx_and_rx_adds_its_loss():
    box = Box(4.0, 0.1, 4.3, 8.9, 0.0, 2.76, material="concrete", eps=6.0, sigma=0.05, thick=0.2)
    free, _ = path_gain_db(_empty_room(), CFG)
    blocked, valid = path_gain_db(_empty_room([box]), CFG)
    loss = min(box.loss_db, CFG.max_crossing_loss_db["concrete"])
    assert 5 < loss < 20
    diff = free[0] - blocked[0]
    assert np.allclose(diff[valid[:, 0] | True][:, :13][valid[:, :13]], 0.0, atol=1e-4)  # x < 3.9 m: no crossing
    assert np.allclose(diff[:, 15:][valid[:, 15:]], loss, atol=1e-4)  # x > 4.5 m: one crossing


def test_scene_sampling_is_seeded_and_valid():
    a = sample_scene(np.random.default_rng([0, 5]), CFG)
    b = sample_scene(np.random.default_rng([0, 5]), CFG)
    assert np.array_equal(a.tx, b.tx) and a.boxes == b.boxes
    assert a.tx.shape == (5, 3) and (a.tx[:, 2] >= 0.5).all() and (a.tx[:, 2] <= 2.5).all()
    assert {bx.material for bx in a.boxes} >= {"wood", "metal", "glass"}
    assert len(_segments([(0, 0, 5, 3), (0, 3, 2, 5)])) == 6


@pytest.mark.parametrize("radius", [0.25, 1.0])
def test_perturbation_respects_severity(radius):
    scene = sample_scene(np.random.default_rng([1, 2]), CFG)
    copy = perturb_scene(scene, np.random.default_rng(0), radius)
    assert np.linalg.norm(copy.tx[:, :2] - scene.tx[:, :2], axis=1).max() <= radius + 1e-9
    assert np.array_equal(copy.tx[:, 2], scene.tx[:, 2])
    moved = 0
    for a, b in zip(scene.boxes, copy.boxes, strict=True):
        shift = math.hypot(b.x0 - a.x0, b.y0 - a.y0)
        assert shift <= radius + 1e-9
        if a.kind == "wall":
            assert (a.y0 == b.y0) if a.axis == 0 else (a.x0 == b.x0)  # slides along its wall only
        moved += shift > 0
    assert moved > len(scene.boxes) // 2


def test_generate_is_resumable_and_checks_config(tmp_path, capsys):
    out = tmp_path / "ds"
    args = [
        "generate",
        str(out),
        "--rooms",
        "2",
        "--copies",
        "1",
        "--severities",
        "0.5",
        "--workers",
        "1",
        "--threads",
        "--no-progress",
    ]
    assert main(args) == 0
    assert "wrote 2 rooms" in capsys.readouterr().out
    first = (out / "radio_maps" / "project1-3.png").read_bytes()
    assert main([*args[:3], "3", *args[4:]]) == 0
    assert "wrote 1 rooms (2 already present)" in capsys.readouterr().out
    assert (out / "radio_maps" / "project1-3.png").read_bytes() == first
    # a dataset written before the backend options existed stays resumable (missing fields = defaults)
    meta = json.loads((out / "generator_config.json").read_text())
    for key in ("backend", "sionna_max_depth", "sionna_samples_per_tx"):
        meta.pop(key)
    (out / "generator_config.json").write_text(json.dumps(meta))
    assert main([*args[:3], "3", *args[4:]]) == 0
    assert "wrote 0 rooms (3 already present)" in capsys.readouterr().out
    with pytest.raises(ValueError, match="different configuration"):
        generate_dataset(
            out,
            2,
            GeneratorConfig(n_copies=1, severities=(0.5,), seed=1),
            processes=False,
            n_workers=1,
            show_progress=False,
        )


def _in_range(b: Box) -> bool:
    r = MATERIALS[b.material]
    return all(r[k][0] <= v <= r[k][1] for k, v in (("eps", b.eps), ("sigma", b.sigma), ("thick", b.thick)))


def test_material_resampling_keeps_geometry_and_classes():
    scene = sample_scene(np.random.default_rng([2, 7]), CFG)
    same = perturb_scene(scene, np.random.default_rng(0), 0.0)
    assert [(b.eps, b.sigma, b.thick) for b in same.boxes] == [(b.eps, b.sigma, b.thick) for b in scene.boxes]
    copy = perturb_scene(scene, np.random.default_rng(0), 0.0, materials=True)
    again = perturb_scene(scene, np.random.default_rng(0), 0.0, materials=True)
    assert copy.boxes == again.boxes and copy.wall == again.wall  # seeded
    changed = 0
    for a, b in zip(scene.boxes, copy.boxes, strict=True):
        assert (a.x0, a.y0, a.x1, a.y1, a.z0, a.z1, a.material) == (b.x0, b.y0, b.x1, b.y1, b.z0, b.z1, b.material)
        assert _in_range(b)
        changed += (a.eps, a.sigma, a.thick) != (b.eps, b.sigma, b.thick)
    assert changed == len(scene.boxes)  # continuous draws: every item gets new parameters
    assert copy.wall.material == scene.wall.material and copy.wall.thick == scene.wall.thick
    assert copy.wall.eps != scene.wall.eps and _in_range(copy.wall)
    # rasters: classes identical, material properties differ; the simulated map changes with the materials
    ids_a, table_a = rasterize(scene, CFG)
    ids_b, table_b = rasterize(copy, CFG)
    assert np.array_equal(ids_a, ids_b)
    ch_a, ch_b = _channels(ids_a, table_a), _channels(ids_b, table_b)
    assert np.array_equal(ch_a["classes"], ch_b["classes"])
    assert not np.array_equal(ch_a["permittivity"], ch_b["permittivity"])
    gain_a, valid = path_gain_db(scene, CFG)
    gain_b, _ = path_gain_db(copy, CFG)
    assert np.abs(gain_a - gain_b)[:, valid].max() > 0.5


def test_generated_copies_with_material_resampling(tmp_path):
    cfg = GeneratorConfig(n_copies=2, severities=(0.0, 0.5), perturb_materials=True, write_properties=True, seed=4)
    root = tmp_path / "mat"
    generate_dataset(root, 1, cfg, processes=False, n_workers=1, show_progress=False)
    lay = RadioMapLayout(root, copies_dir="sev0")
    assert lay.count_copies(0) == 2
    orig_cls, orig_prop = lay.read_environment(0, "classes"), lay.read_environment(0, "properties")
    assert lay.read_tx(0) == lay.read_tx(0, copy=1)  # severity 0: materials only
    for k in range(2):
        assert np.array_equal(lay.read_environment(0, "classes", copy=k), orig_cls)
        prop = lay.read_environment(0, "properties", copy=k)
        assert prop.shape == (87, 256, 256) and not np.array_equal(prop, orig_prop)
        assert np.array_equal(prop[1::3] > 0, orig_prop[1::3] > 0)  # same occupied voxels (permittivity ≥ 1)
    moved = RadioMapLayout(root, copies_dir="sev0.5")
    assert not np.array_equal(moved.read_environment(0, "classes", copy=0), orig_cls)
    # SNDA over material-only copies: the input changes, the target stays the original room's map
    pairs = [(0, t) for t in range(5)]
    clean = RadioMapDataset(lay, pairs, encoding="properties")
    noisy = RadioMapDataset(lay, pairs, encoding="properties", copy_mode="deterministic")
    assert torch.equal(clean[3]["target"], noisy[3]["target"])
    assert torch.equal(clean[3]["tx"], noisy[3]["tx"]) and not torch.equal(clean[3]["env"], noisy[3]["env"])
    assert json.loads((root / "generator_config.json").read_text())["perturb_materials"] is True
    # without re-sampling, severity-0 copies are exact copies of the original rasters
    plain = tmp_path / "plain"
    generate_dataset(plain, 1, replace(cfg, perturb_materials=False, severities=(0.0,)), processes=False,
                     n_workers=1, show_progress=False)  # fmt: skip
    p_lay = RadioMapLayout(plain, copies_dir="sev0")
    assert np.array_equal(p_lay.read_environment(0, "properties", copy=0), p_lay.read_environment(0, "properties"))
