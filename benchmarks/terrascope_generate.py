"""Throughput of the TerraScope-Bench and Terra-CoT generators on a generated BigEarthNet v2 archive (Dask).

Usage: ``uv run python benchmarks/terrascope_generate.py --patches 40 --workers 2``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rsim.core.parallel import dask_client
from rsim.core.testing import write_benv2_fixture
from rsim.terrascope.data.generate import generate_bench, generate_cot


def main() -> None:
    """Write an archive, then time bench and CoT generation with one shared local cluster."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patches", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ben"
        write_benv2_fixture(root, splits={"train": args.patches, "validation": 0, "test": 0}, snow_cloud=0)
        with dask_client(n_workers=args.workers) as client:
            start = time.perf_counter()
            bench = generate_bench(root, Path(tmp) / "bench.parquet", client=client, show_progress=False)
            t_bench = time.perf_counter() - start
            start = time.perf_counter()
            cot = generate_cot(root, Path(tmp) / "cot", client=client, show_progress=False)
            t_cot = time.perf_counter() - start
    print(
        f"bench: {bench.n_patches} patches → {bench.n_items} items in {t_bench:.1f} s "
        f"({bench.n_patches / t_bench:.1f} patches/s); per task {bench.per_task}"
    )
    print(
        f"cot:   {cot.n_patches} patches → {cot.n_items} records in {t_cot:.1f} s "
        f"({cot.n_patches / t_cot:.1f} patches/s)"
    )


if __name__ == "__main__":
    main()
