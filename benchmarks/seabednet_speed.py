"""Seabed-Net CPU speed: reference_compatible (original computation) vs default mode.

Forward (eval, no_grad) and training-step (forward + backward + Adam step) throughput and peak RSS, each mode
in its own subprocess so the peak memory is per mode. Issue target: f=64, 256x256, batch 2, CPU.

    uv run python benchmarks/seabednet_speed.py --features 64 --reps 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _child(mode: str, features: int, size: int, batch: int, reps: int, threads: int) -> dict[str, float | str]:
    import torch
    from rsim.seabednet.models.seabednet import SeabedNet

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = SeabedNet(3, features, 1, 5, reference_compatible=mode == "reference_compatible")
    x = torch.rand(batch, 3, size, size)
    model.eval()
    with torch.no_grad():
        model(x)  # warm-up (also sizes the reference-mode pos_embeds as the original does)
        t0 = time.perf_counter()
        for _ in range(reps):
            model(x)
        fwd = (time.perf_counter() - t0) / reps
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    target = torch.rand(batch, 1, size, size)
    labels = torch.randint(0, 5, (batch, size, size))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        bathy, seg = model(x)
        loss = (bathy - target).square().mean() + torch.nn.functional.cross_entropy(seg, labels)
        loss.backward()
        opt.step()

    step()  # warm-up (allocates Adam state)
    t0 = time.perf_counter()
    for _ in range(reps):
        step()
    train = (time.perf_counter() - t0) / reps
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "mode": mode,
        "forward_s": fwd,
        "forward_img_per_s": batch / fwd,
        "train_step_s": train,
        "train_img_per_s": batch / train,
        "peak_rss_mib": peak_mib,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
    }


def _blocks(features: int, size: int, batch: int, reps: int, threads: int) -> None:
    """Time only the four fusion transformer blocks (the only code that differs between the modes)."""
    import torch
    from rsim.seabednet.models.seabednet import TransformerBlock

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    print(f"fusion transformer blocks only, f={features}, {size}x{size}, batch {batch}, {reps} reps (ms/call)")
    print(f"{'level':<7}{'dim':>5}{'tokens':>8}{'reference':>11}{'default':>9}{'max |diff|':>12}")
    for level in range(4):
        dim = features * 2**level
        g = max(1, (size >> level) // 32)
        blk = TransformerBlock(dim, 4, 32, dropout=0.0).eval()
        x = torch.randn(batch, g * g, dim)
        times = {}
        with torch.no_grad():
            outs = {}
            for ref in (True, False):
                outs[ref] = blk(x, g, g, ref)
                t0 = time.perf_counter()
                for _ in range(reps):
                    blk(x, g, g, ref)
                times[ref] = (time.perf_counter() - t0) / reps * 1e3
        diff = (outs[True] - outs[False]).abs().max().item()
        print(f"{level + 1:<7}{dim:>5}{g * g:>8}{times[True]:>11.2f}{times[False]:>9.2f}{diff:>12.2e}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--blocks-only", action="store_true", help="time only the fusion transformer blocks")
    a = p.parse_args()
    if a.blocks_only:
        _blocks(a.features, a.size, a.batch, a.reps, a.threads)
        return
    if a.child:
        print(json.dumps(_child(a.child, a.features, a.size, a.batch, a.reps, a.threads)))
        return
    rows = []
    for mode in ("reference_compatible", "default"):
        cmd = [sys.executable, __file__, "--child", mode]
        cmd += ["--features", str(a.features), "--size", str(a.size), "--batch", str(a.batch)]
        cmd += ["--reps", str(a.reps), "--threads", str(a.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    print(f"Seabed-Net f={a.features}, {a.size}x{a.size}, batch {a.batch}, CPU {a.threads} threads, {a.reps} reps")
    print(f"{'mode':<22}{'fwd s':>8}{'fwd img/s':>11}{'train s':>9}{'train img/s':>13}{'peak RSS MiB':>14}")
    for r in rows:
        print(
            f"{r['mode']:<22}{r['forward_s']:>8.2f}{r['forward_img_per_s']:>11.3f}{r['train_step_s']:>9.2f}"
            f"{r['train_img_per_s']:>13.3f}{r['peak_rss_mib']:>14.0f}"
        )
    ref, new = rows
    print(
        f"default / reference: forward {ref['forward_s'] / new['forward_s']:.2f}x, "
        f"train step {ref['train_step_s'] / new['train_step_s']:.2f}x faster"
    )


if __name__ == "__main__":
    main()
