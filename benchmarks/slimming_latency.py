"""CPU latency and FLOPs per slimming width for ViT-S/16 and ViT-B/16 at 224² (random weights, batch 1).

Usage: uv run python benchmarks/slimming_latency.py [--models vit_small_patch16_224 vit_base_patch16_224]
       [--threads 2] [--repeats 5] [--batch 1] [--mode width] [--slim-embed] [--out latency.json]
Checks the issue's target: latency at s = 0.25 <= 40 % of full width. ``--slim-embed`` also cuts the residual
width (FLOPs ~ s^2); any timm model works (e.g. ``resnet50``: CNN channel slimming; FLOPs measured only).
"""

from __future__ import annotations

import argparse
import json
import time

import timm
import torch
from rsim.slimming import PAPER_WIDTHS, measure_flops, slim, vit_flops
from timm.models.vision_transformer import VisionTransformer


def latency(model: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    with torch.inference_mode():
        model(x)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return min(times)  # the least-disturbed run: the machine may be shared


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["vit_small_patch16_224", "vit_base_patch16_224"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--mode", choices=("width", "heads"), default="width")
    p.add_argument("--slim-embed", action="store_true", help="also cut the residual width D")
    p.add_argument("--out")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x = torch.randn(a.batch, 3, 224, 224)
    results = []
    print(
        f"torch {torch.__version__}, {a.threads} threads, batch {a.batch}, best of {a.repeats}, mode {a.mode}, "
        f"slim_embed {a.slim_embed}"
    )
    print(f"{'model':<24}{'s':>8}{'GFLOPs':>9}{'rel FLOPs':>11}{'rel blk':>9}{'ms':>9}{'rel lat':>9}")
    for name in a.models:
        full_model = timm.create_model(name, pretrained=False, num_classes=0).eval()
        base_ms = base_flops = base_blocks = 0.0
        for s in PAPER_WIDTHS:
            model = slim(full_model, s, a.mode, embed=a.slim_embed).eval()
            ms = latency(model, x, a.repeats) * 1e3
            flops = measure_flops(model, x[:1])
            blocks = measure_flops(model, x[:1], "blocks")
            if isinstance(full_model, VisionTransformer):  # measured == analytic
                assert flops == vit_flops(full_model, s, a.mode, "total", embed=a.slim_embed)
                assert blocks == vit_flops(full_model, s, a.mode, "blocks", embed=a.slim_embed)
            if s == 1.0:
                base_ms, base_flops, base_blocks = ms, flops, blocks
            row = {
                "model": name, "width": s, "slim_embed": a.slim_embed, "flops": flops,
                "rel_flops": flops / base_flops, "rel_flops_blocks": blocks / base_blocks,
                "latency_ms": ms, "rel_latency": ms / base_ms,
            }  # fmt: skip
            results.append(row)
            print(f"{name:<24}{s:>8.4f}{flops / 1e9:>9.3f}{row['rel_flops']:>11.4f}{row['rel_flops_blocks']:>9.4f}"
                  f"{ms:>9.1f}{row['rel_latency']:>9.3f}")  # fmt: skip
        quarter = next(r for r in results if r["model"] == name and r["width"] == 0.25)
        verdict = "PASS" if quarter["rel_latency"] <= 0.40 else "FAIL"
        print(f"{name}: latency at s=0.25 is {quarter['rel_latency']:.1%} of full width (target <= 40%): {verdict}")
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
