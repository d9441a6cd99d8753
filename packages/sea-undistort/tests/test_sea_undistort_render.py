import importlib.util
import json

import numpy as np
import pytest
from PIL import Image
from rsim.sea_undistort.data import SeaUndistortDataset, load_scene_settings
from rsim.sea_undistort.render.generate import SceneJob, generate, render_job, scene_done
from rsim.sea_undistort.render.params import RenderConfig, sample_scene

HAS_BPY = importlib.util.find_spec("bpy") is not None


def test_scene_parameters_seeded_and_in_published_ranges():
    cfg = RenderConfig(resolution=64)
    scenes = [sample_scene(i, 7, cfg) for i in range(200)]
    assert sample_scene(3, 7, cfg) == scenes[3] and sample_scene(3, 8, cfg) != scenes[3]
    for s in scenes:
        assert 25 <= s["sun_elevation_deg"] <= 70 and 30 <= s["camera_altitude_m"] <= 200
        assert -8 <= s["mean_depth_m"] <= -0.5 and 0 <= s["tilt_deg"] <= 5
        assert s["sensor_width_mm"] == 36 and s["focal_length_mm"] in (20, 24) and s["image_width_px"] in (4000, 5472)
        expected = s["camera_altitude_m"] * 0.036 / (s["image_width_px"] * s["focal_length_mm"] / 1000) * 512 / 64
        assert s["gsd_m"] == pytest.approx(expected)
    assert {s["seabed_type"] for s in scenes} == {"rock", "sand", "gravel", "seagrass"}
    json.dumps(scenes[0])  # every parameter is JSON-serialisable
    with pytest.raises(ValueError, match="seabed"):
        sample_scene(0, 0, RenderConfig(seabed_types=("mud",)))


@pytest.mark.skipif(not HAS_BPY, reason="bpy (the [render] extra) is not installed")
def test_render_tiny_scene_resume_and_load(tmp_path):
    cfg = RenderConfig(resolution=32, samples=2)
    job = SceneJob(0, 3, cfg, str(tmp_path), threads=2)
    record = render_job(job)
    assert not record["skipped"] and scene_done(tmp_path, "0000")
    images = {
        v: np.asarray(Image.open(tmp_path / f"render_0000{v}.png"))
        for v in ("", "_no_waves", "_no_sunglint", "_ground")
    }
    for img in images.values():
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8 and img.std() > 0
    assert not np.array_equal(images["_ground"], images["_no_waves"])  # water changes the image
    assert not list(tmp_path.glob(".*.tmp*"))  # atomic writes left no temporaries
    # resume: the finished scene is skipped by the Dask generator, the settings file is merged
    records = generate(tmp_path, 1, seed=3, config=cfg, show_progress=False, processes=False)
    assert records[0]["skipped"] and records[0]["sun_elevation_deg"] == record["sun_elevation_deg"]
    settings = load_scene_settings(tmp_path / "scene_settings.json")
    assert settings["0000"]["seabed_type"] == record["seabed_type"] and "render_seconds" in settings["0000"]
    ds = SeaUndistortDataset(tmp_path, "train", fractions=(1.0, 0.0, 0.0))
    assert len(ds) == 1 and ds[0]["no_sunglint"].shape == (3, 32, 32)
