"""Soft-rank forward+backward time at B = 128/256/512 and GeoRank's overhead per ResNet-18 training step.

    uv run python benchmarks/georank_softrank.py [--device cuda] [--img-size 120] [--step-batch 256]

Soft rank is timed on the (B, B−1) similarity rows GeoRank feeds it (τ = 0.04, ε = 1e-3, 128-d embeddings);
torchsort's C++/CUDA extension is timed side by side when it is installed. The overhead is
(step with GeoRank − step without) / step without, for BYOL-free plain ResNet-18 forward+backward at ``--step-batch``.
"""

from __future__ import annotations

import argparse
import time

import torch
from rsim.georank.losses import GeoRankLoss, drop_diagonal
from rsim.georank.models import build_backbone
from rsim.georank.softrank import soft_rank


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time(fn, device: str, repeat: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    _sync(device)
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    _sync(device)
    return (time.perf_counter() - t) / repeat * 1000


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--img-size", type=int, default=120)
    p.add_argument("--step-batch", type=int, default=256)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device
    try:
        import torchsort  # type: ignore[import-not-found]
    except ImportError:
        torchsort = None
    print(f"device {dev}, torch threads {torch.get_num_threads()}, torchsort {'yes' if torchsort else 'not installed'}")
    for b in (128, 256, 512):
        z = torch.nn.functional.normalize(torch.randn(b, 128, device=dev), dim=1)
        sim = drop_diagonal(z @ z.T / 0.04).detach().requires_grad_()

        def ours(sim: torch.Tensor = sim) -> None:
            soft_rank(sim, 1e-3).sum().backward()

        line = f"B={b}: soft rank fwd+bwd {_time(ours, dev, args.repeat):.2f} ms"
        if torchsort is not None:

            def theirs(sim: torch.Tensor = sim) -> None:
                torchsort.soft_rank(sim, regularization_strength=1e-3).sum().backward()

            line += f", torchsort {_time(theirs, dev, args.repeat):.2f} ms"
        print(line)
    model, _ = build_backbone("resnet18", 10)
    model = model.to(dev)
    x = torch.randn(args.step_batch, 10, args.img_size, args.img_size, device=dev)
    coords = torch.stack([torch.rand(args.step_batch) * 30 + 35, torch.rand(args.step_batch) * 40 - 10], 1).to(dev)
    loss_fn = GeoRankLoss()

    def step(with_georank: bool) -> None:
        model.zero_grad(set_to_none=True)
        f = model(x)
        loss = f.pow(2).mean()
        if with_georank:
            loss = 0.5 * loss + 0.5 * loss_fn(f, coords)
        loss.backward()

    repeat = max(1, args.repeat // 2)
    base = _time(lambda: step(False), dev, repeat)
    with_geo = _time(lambda: step(True), dev, repeat)
    print(
        f"ResNet-18 step at B={args.step_batch}, {args.img_size} px: {base:.1f} ms; with GeoRank {with_geo:.1f} ms; "
        f"overhead {100 * (with_geo - base) / base:.1f}%"
    )


if __name__ == "__main__":
    main()
