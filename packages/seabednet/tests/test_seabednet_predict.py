"""Sliding-window helpers and MapPredictor consistency with a direct forward pass."""

from __future__ import annotations

import numpy as np
import torch
from rsim.seabednet.models.seabednet import SeabedNet
from rsim.seabednet.predict import MapPredictor


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
