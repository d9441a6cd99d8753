"""BigEarthNet v2 loading throughput: our GeoTIFF path, our LMDB path and torchgeo's ``BigEarthNetV2``.

All three read the same generated archive (official layout, ``rsim.core.testing.write_benv2_fixture``) with the same
batch size and worker count, and deliver the same content per sample: the 12 S2 bands at 120×120 float, the
reference map and the 19-class label. torchgeo resamples in its workers; our readers return raw arrays and the
batch is stacked/resampled by ``BigEarthNetDataModule.transform_batch`` (on the CPU here, inside the timed loop).
Each reader runs in its own process; peak RSS includes its DataLoader workers.

    uv sync --group bench
    uv run python benchmarks/bigearthnet_loading.py --patches 2000 --batch-size 64 --workers 2 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024  # Linux reports KiB


def run_reader(reader: str, root: Path, lmdb: Path, batch_size: int, workers: int, epochs: int) -> dict[str, float]:
    import torch

    torch.set_num_threads(1)
    if reader == "torchgeo":
        from torch.utils.data import DataLoader
        from torchgeo.datasets import BigEarthNetV2

        dataset = BigEarthNetV2(str(root), split="train", bands="s2")
        loader = DataLoader(
            dataset, batch_size=batch_size, num_workers=workers, shuffle=True, persistent_workers=workers > 0
        )

        def consume(batch: dict) -> int:  # type: ignore[type-arg]
            return int(batch["image"].shape[0])  # already resampled to 120 px in the workers
    else:
        from rsim.core.data import BigEarthNetDataModule

        kwargs = {"root": str(root)} if reader == "rsim-geotiff" else {"lmdb": str(lmdb)}
        dm = BigEarthNetDataModule(
            **kwargs,
            metadata=str(root / "metadata.parquet"),
            bands="S2_ALL",
            reference_maps=True,
            normalization=None,
            augment=False,
            batch_size=batch_size,
            num_workers=workers,
            persistent_workers=True,  # the data module's default; torchgeo's loader gets the same
        )
        loader = dm.train_dataloader()

        def consume(batch: dict) -> int:  # type: ignore[type-arg]
            out = dm.transform_batch(batch, train=False)  # on the GPU in training; here on one CPU thread
            return int(out["image"].shape[0])

    def timed(transform: bool) -> float:
        seen = 0
        start = time.perf_counter()
        for _ in range(epochs):
            for batch in loader:
                seen += consume(batch) if transform else int(batch["label"].shape[0])
        return seen / (time.perf_counter() - start)

    loader_rate = timed(transform=False)
    end_to_end = timed(transform=True) if reader != "torchgeo" else loader_rate
    return {"loader_per_s": loader_rate, "end_to_end_per_s": end_to_end, "peak_rss_mb": _peak_rss_mb()}


def prepare(work: Path, patches: int) -> tuple[Path, Path]:
    from rsim.core.data.encode import encode_bigearthnet
    from rsim.core.testing import write_benv2_fixture

    root, lmdb = work / "BigEarthNet", work / "BigEarthNet.lmdb"
    if not (root / "metadata.parquet").exists():
        print(f"writing {patches} patches (official v2 layout) to {root} ...", flush=True)
        fixture = write_benv2_fixture(root, splits={"train": patches}, snow_cloud=0, seed=0)
        (root / "metadata.parquet").write_bytes(fixture.metadata_path.read_bytes())  # torchgeo reads root/metadata
    if not lmdb.exists():
        encode_bigearthnet(root, lmdb, modalities=("S2", "reference_maps"), n_workers=2)
    return root, lmdb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patches", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--epochs", type=int, default=3, help="epochs per reader (workers persist; a real epoch is 237k patches)"
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="reuse a generated archive here")
    parser.add_argument("--readers", nargs="+", default=["torchgeo", "rsim-geotiff", "rsim-lmdb"])
    parser.add_argument("--_run", default=None, help=argparse.SUPPRESS)
    ns = parser.parse_args()
    work = ns.work_dir or Path(tempfile.mkdtemp(prefix="ben-bench-"))
    if ns._run:
        result = run_reader(
            ns._run, work / "BigEarthNet", work / "BigEarthNet.lmdb", ns.batch_size, ns.workers, ns.epochs
        )
        print(json.dumps(result))
        return
    prepare(work, ns.patches)
    results: dict[str, dict[str, float]] = {}
    for reader in ns.readers:
        cmd = [sys.executable, __file__, "--work-dir", str(work), "--batch-size", str(ns.batch_size),
               "--workers", str(ns.workers), "--epochs", str(ns.epochs), "--_run", reader]  # fmt: skip
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        results[reader] = json.loads(out)
        print(f"{reader}: {results[reader]}", flush=True)
    base = results.get("torchgeo", {}).get("loader_per_s")
    print(f"\n{ns.patches} patches, batch {ns.batch_size}, {ns.workers} workers, {ns.epochs} epoch(s), "
          "12 S2 bands + reference map + label per sample\n")  # fmt: skip
    print("loader = an epoch of what the DataLoader delivers (torchgeo: resampled in its workers; ours: raw arrays);")
    print("+ CPU transform = a second epoch in which ours are also stacked and resampled to 120 px by the main")
    print("process on the CPU (in training this runs on the GPU); on 2 cores it competes with the 2 workers.\n")
    print("| reader | loader patches/s | × torchgeo | + CPU transform patches/s | × torchgeo | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for reader, r in results.items():
        ratio = f"{r['loader_per_s'] / base:.1f}×" if base else "n/a"
        ratio_e2e = f"{r['end_to_end_per_s'] / base:.1f}×" if base else "n/a"
        print(
            f"| {reader} | {r['loader_per_s']:.1f} | {ratio} | {r['end_to_end_per_s']:.1f} | {ratio_e2e} "
            f"| {r['peak_rss_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
