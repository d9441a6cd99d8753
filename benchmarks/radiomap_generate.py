"""rsim-radiomap throughput: scene generator (rooms/s per core) and RadioNet training (samples/s).

Generator: one Dask worker (one core, threads mode so nothing else competes), ``--rooms`` rooms with 5 Tx each, with
and without perturbed copies; the per-stage split (scene sampling, multi-wall path loss, PNG writing) is measured
on the same rooms in-process. Training: forward + backward + Adam step of RadioNet256to32 on 256² inputs.

    uv run python benchmarks/radiomap_generate.py --rooms 20 --copies 10 --width 0.125 --batch 4
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def bench_generator(rooms: int, copies: int, severities: tuple[float, ...]) -> dict[str, float]:
    import numpy as np
    from rsim.radiomap.generator import GeneratorConfig, generate_dataset, path_gain_db, sample_scene

    out: dict[str, float] = {}
    cfg = GeneratorConfig(n_copies=copies, severities=severities)
    t0 = time.perf_counter()
    scenes = [sample_scene(np.random.default_rng([0, e]), cfg) for e in range(rooms)]
    out["sample_s_per_room"] = (time.perf_counter() - t0) / rooms
    t0 = time.perf_counter()
    for s in scenes:
        path_gain_db(s, cfg)
    out["path_loss_s_per_room_5tx"] = (time.perf_counter() - t0) / rooms
    for label, c in (("maps_only", 0), (f"with_{copies}x{len(severities)}_copies", copies)):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = GeneratorConfig(n_copies=c, severities=severities if c else ())
            t0 = time.perf_counter()
            generate_dataset(Path(tmp) / "ds", rooms, cfg, processes=False, n_workers=1, show_progress=False)
            dt = time.perf_counter() - t0
        out[f"rooms_per_s_per_core_{label}"] = rooms / dt
    return out


def bench_training(width: float, batch: int, steps: int) -> dict[str, float]:
    import torch
    from rsim.radiomap.tasks import RadioMapTask, masked_mse

    torch.manual_seed(0)
    task = RadioMapTask(in_channels=32, width_mult=width)
    opt = torch.optim.Adam(task.parameters(), lr=1e-4)
    x, y = torch.rand(batch, 32, 256, 256), torch.rand(batch, 1, 32, 32)
    mask = torch.ones_like(y, dtype=torch.bool)
    for i in range(steps + 1):
        if i == 1:
            t0 = time.perf_counter()
        opt.zero_grad()
        masked_mse(task(x), y, mask).backward()
        opt.step()
    dt = time.perf_counter() - t0
    return {f"train_samples_per_s_width{width}_batch{batch}": steps * batch / dt}


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rooms", type=int, default=20)
    p.add_argument("--copies", type=int, default=10)
    p.add_argument("--severities", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    res = {"torch_threads": a.threads, **bench_generator(a.rooms, a.copies, tuple(a.severities))}
    res.update(bench_training(a.width, a.batch, a.steps))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
