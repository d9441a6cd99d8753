"""Sliding-window helpers and MapPredictor consistency with a direct forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rsim.seabednet.models.seabednet import SeabedNet
from rsim.seabednet.predict import MapPredictor, blend_weights, tile_starts


def test_tile_starts_cover_and_end_flush() -> None:
    assert tile_starts(100, 30, 23) == [0, 23, 46, 69, 70]
    assert tile_starts(30, 30, 23) == [0]
    with pytest.raises(ValueError, match="smaller than the tile"):
        tile_starts(20, 30, 23)


def test_blend_weights() -> None:
    w = blend_weights(10, 3)
    assert w.shape == (10, 10) and (w > 0).all() and w.max() == 1.0
    torch.testing.assert_close(w, w.T)
    assert w[0, 0] < w[1, 1] < w[3, 3] == 1.0
    assert torch.equal(blend_weights(8, 0), torch.ones(8, 8))


def test_single_tile_equals_forward() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = SeabedNet(3, 8, 1, 3).eval()
    norm = torch.tensor([[0.0, 0.0, 0.0], [200.0, 200.0, 200.0]])
    rng = np.random.default_rng(0)
    image = rng.uniform(1, 255, (3, 256, 256)).astype(np.float32)
    image[:, :, :10] = 0  # no-data strip
    pred = MapPredictor(model, norm, depth_scale=11.0, tile=256, overlap=64, undefined_index=2)
    depth, classes, valid = pred.predict_array(image)
    with torch.no_grad():
        x = (torch.from_numpy(image)[None] / 200.0).clamp(0, 1)
        bathy, logits = model(x)
    np.testing.assert_allclose(depth, bathy[0, 0].numpy() * 11.0, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(classes, logits[0, :2].argmax(0).numpy())
    assert not valid[:, :10].any() and valid[:, 10:].all()
