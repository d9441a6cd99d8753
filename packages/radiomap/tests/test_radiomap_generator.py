import math

import numpy as np
import pytest
from rsim.radiomap.cli import main
from rsim.radiomap.generator import (
    Box,
    GeneratorConfig,
    Scene,
    _segments,
    generate_dataset,
    path_gain_db,
    perturb_scene,
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
    with pytest.raises(ValueError, match="different configuration"):
        generate_dataset(
            out,
            2,
            GeneratorConfig(n_copies=1, severities=(0.5,), seed=1),
            processes=False,
            n_workers=1,
            show_progress=False,
        )
