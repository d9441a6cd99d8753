"""Bitstream vs likelihood rate of HyVIC model files on an image, per latent, for both scale-index mappings.

Run from the repository root (models from the README quickstart):

    uv run --all-packages python benchmarks/hyvic_rate.py runs/hyvic-demo/lambda-100.pt runs/hyvic-demo/lambda-1000.pt

For each model and each mapping (``up`` = CompressAI's round-up scale index, ``nearest`` = this package's
default) it prints the y and z string sizes over their likelihood bits, the payload (y + z) and whole-file
ratios, and the file bpppc. For ``up`` it also splits the y excess into the part caused by the table scales
(ideal cost of the symbols under the rounded table scales) and the part caused by the 16-bit quantised CDFs.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from rsim.hyvic.checkpoint import load_model, model_divisor
from rsim.hyvic.codec import _to_model_input, compress_file, default_scale, open_source, tile_grid
from rsim.hyvic.entropy import index_rounding


def _symbol_costs(model, x: torch.Tensor, mode: str) -> tuple[float, float]:
    """Ideal bits of the y symbols under the table scales, and under the quantised CDF tables."""
    gc, eb = model.gaussian_conditional, model.entropy_bottleneck
    with torch.inference_mode(), index_rounding(model, mode):
        y = model.g_a(x)
        z = model.h_a(y)
        z_hat = eb.quantize(z, "dequantize", eb._get_medians())
        scales, means = model._params(z_hat)
        idx = gc.build_indexes(scales).long()
        sym = torch.round(y - means)
        table = gc.scale_table[idx]
        v = sym.abs()
        p = gc._standardized_cumulative((0.5 - v) / table) - gc._standardized_cumulative((-0.5 - v) / table)
        ideal = float(-torch.log2(p.clamp_min(1e-9)).sum())
        s = (sym.int() - gc._offset[idx]).long()
        inside = (s >= 0) & (s < (gc._cdf_length[idx] - 2).long())
        sc = s.clamp(0, gc._quantized_cdf.shape[1] - 2)
        freq = (gc._quantized_cdf[idx, sc + 1] - gc._quantized_cdf[idx, sc]).float()
        cdf_bits = float(-torch.log2(freq[inside] / 2**gc.entropy_coder_precision).sum())
    return ideal, cdf_bits  # symbols outside a table (bypass-coded) are rare and left out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--input", default="shared/data/s2-l1c-crop")
    ap.add_argument("--grid", type=int, default=10)
    ap.add_argument("--tile", type=int, default=256)
    a = ap.parse_args()
    torch.set_num_threads(1)
    print(f"{'model':<18} {'mapping':<8} {'y/lik':>7} {'z/lik':>7} {'payload/lik':>11} {'file/lik':>8} "
          f"{'bpppc':>7} {'y ideal(table)/lik':>18} {'y cdf/lik':>9}")  # fmt: skip
    for path in a.models:
        model = load_model(path)
        with open_source(a.input, grid=a.grid) as src:
            scale = default_scale(src.dtype)
            tiles = [
                _to_model_input(src.read(r, c, h, w), scale, model_divisor(model), src.name)
                for r, c, h, w in tile_grid(src.shape[1], src.shape[2], a.tile)
            ]
            c_all, h_all, w_all = src.shape
        ly = lz = 0.0
        for x in tiles:
            with torch.inference_mode():
                lik = model(x)["likelihoods"]
            ly += float(-torch.log2(lik["y"]).sum())
            lz += float(-torch.log2(lik["z"]).sum())
        for mode in ("up", "nearest"):
            by = bz = ideal = cdf = 0.0
            for x in tiles:
                with index_rounding(model, mode):
                    enc = model.compress(x)
                by += 8 * len(enc["strings"][0][0])
                bz += 8 * len(enc["strings"][1][0])
                i, c = _symbol_costs(model, x, mode)
                ideal += i
                cdf += c
            with tempfile.TemporaryDirectory() as td:
                st = compress_file(model, a.input, Path(td) / "x.hyv", tile=a.tile, grid=a.grid, scale_index=mode)
            lik_all = ly + lz
            print(
                f"{Path(path).name:<18} {mode:<8} {by / ly:>7.4f} {bz / lz:>7.4f} "
                f"{8 * st.payload_bytes / lik_all:>11.4f} "
                f"{8 * st.num_bytes / lik_all:>8.4f} {8 * st.num_bytes / (c_all * h_all * w_all):>7.4f} "
                f"{ideal / ly:>18.4f} {cdf / ly:>9.4f}"
            )
        print(f"{'':<18} likelihood bits: y {ly:.0f}, z {lz:.0f}")


if __name__ == "__main__":
    main()
