"""CSMoE vs CSMAE at equal width and depth: FLOPs per image (torch FlopCounterMode) and CPU images/s.

Usage: uv run python benchmarks/csmoe_efficiency.py [--vit-size base] [--batch 8] [--repeats 3] [--out x.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from rsim.csmoe.models.csmae import build_backbone
from rsim.csmoe.models.profile import model_cost

CONFIGS: dict[str, dict] = {
    "CSMAE SESD (dense)": {},
    "CSMoE shared, 8x4 slots": {"moe_layers": ["shared"], "num_experts": 8, "slots_per_expert": 4},
    "CSMoE shared+2nd half specific, 8x4": {
        "moe_layers": ["shared", "specific_second_half"],
        "num_experts": 8,
        "slots_per_expert": 4,
    },
    "CSMoE all blocks, 8x4": {"moe_layers": ["shared", "specific"], "num_experts": 8, "slots_per_expert": 4},
    "CSMoE all blocks, 8x2": {"moe_layers": ["shared", "specific"], "num_experts": 8, "slots_per_expert": 2},
    "CSMoE all blocks, 4x2": {"moe_layers": ["shared", "specific"], "num_experts": 4, "slots_per_expert": 2},
}


def throughput(kwargs: dict, vit_size: str, batch: int, repeats: int) -> float:
    torch.manual_seed(0)
    model = build_backbone(vit_size, "sesd", **kwargs).eval()
    x = torch.rand(batch, 12, 120, 120)
    with torch.inference_mode():
        model(x)
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
        return batch * repeats / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--vit-size", default="base")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    rows = []
    for name, kw in CONFIGS.items():
        with torch.device("meta"):
            cost = model_cost(build_backbone(a.vit_size, "sesd", **kw))
        ips = throughput(kw, a.vit_size, a.batch, a.repeats) if a.repeats > 0 else float("nan")
        rows.append({"config": name, **cost.as_dict(), "images_per_s_cpu": ips})
    base = rows[0]
    print(f"ViT-{a.vit_size}, SESD depths, batch {a.batch}, {torch.get_num_threads()} CPU thread(s)")
    print(f"{'config':40}{'params M':>10}{'active M':>10}{'GFLOPs':>9}{'FLOP x':>8}{'img/s':>8}{'speed x':>9}")
    for r in rows:
        r["flops_ratio_vs_csmae"] = base["flops_per_image"] / r["flops_per_image"]
        r["throughput_ratio_vs_csmae"] = r["images_per_s_cpu"] / base["images_per_s_cpu"]
        print(
            f"{r['config']:40}{r['total_params'] / 1e6:>10.1f}{r['active_params_per_token'] / 1e6:>10.1f}"
            f"{r['flops_per_image'] / 1e9:>9.2f}{r['flops_ratio_vs_csmae']:>8.2f}{r['images_per_s_cpu']:>8.2f}"
            f"{r['throughput_ratio_vs_csmae']:>9.2f}"
        )
    if a.out:
        from rsim.core.io import atomic_path

        with atomic_path(a.out) as tmp:
            tmp.write_text(json.dumps({"vit_size": a.vit_size, "batch": a.batch, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
