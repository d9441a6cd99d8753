from __future__ import annotations

import pytest
import torch
from rsim.core.data.tiling import blend_weights, tile_starts


def test_tile_starts_cover_and_end_flush() -> None:
    assert tile_starts(100, 30, 23) == [0, 23, 46, 69, 70]
    assert tile_starts(30, 30, 23) == [0]
    assert tile_starts(20, 30, 23) == [0]  # shorter than a tile: one (padded) window
    assert tile_starts(92, 30, 31) == [0, 31, 62]
    with pytest.raises(ValueError, match="must be positive"):
        tile_starts(100, 30, 0)


def test_blend_weights() -> None:
    w = blend_weights(10, 3)
    assert w.shape == (10, 10) and (w > 0).all() and w.max() == 1.0
    torch.testing.assert_close(w, w.T)
    assert w[0, 0] < w[1, 1] < w[3, 3] == 1.0
    assert torch.equal(blend_weights(8, 0), torch.ones(8, 8))
    wide = blend_weights(6, 5)  # overlap beyond half a tile: ramps meet, weights stay positive and symmetric
    torch.testing.assert_close(wide, wide.flip(0).flip(1))
