"""One CUDA + AMP training step per package present, including the device-side transforms (at most ~5 minutes).

Run on a lent GPU machine as a single command:

    uv run python benchmarks/gpu_check.py

Prints one line per package: ``<package>: ok (<seconds>, loss=<value>, peak <MiB> MiB)`` or the error. Exits 1 if
any present package fails, 2 if CUDA is absent.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch


def check_core(tmp: Path, accelerator: str = "cuda", precision: str = "16-mixed", small: bool = False) -> float:
    """reBEN ResNet-50 on a generated v2 archive read through LMDB, transforms on the GPU."""
    from rsim.core.data import BigEarthNetDataModule
    from rsim.core.data.encode import encode_bigearthnet
    from rsim.core.tasks import MultiLabelClassificationTask
    from rsim.core.testing import fit_one_step, write_benv2_fixture

    fixture = write_benv2_fixture(tmp / "ben", splits={"train": 8, "validation": 2, "test": 2})
    encode_bigearthnet(fixture.root, tmp / "ben.lmdb", processes=False, n_workers=1, show_progress=False)
    dm = BigEarthNetDataModule(lmdb=str(tmp / "ben.lmdb"), metadata=str(fixture.metadata_path), bands="S1S2",
                               batch_size=8, num_workers=2)  # fmt: skip
    task = MultiLabelClassificationTask("resnet18" if small else "resnet50", in_channels=12)
    return fit_one_step(task, dm, tmp, accelerator=accelerator, precision=precision)


CHECKS: dict[str, tuple[str, Callable[..., float]]] = {
    "rsim-core": ("rsim.core", check_core),
}


def register_package_checks() -> None:
    """Packages provide ``rsim.<name>.gpu_check.run(tmp, accelerator, precision, small) -> float`` (one step's loss)."""
    for name in ("hyvic", "seabednet", "radiomap", "nar", "georank", "csmoe", "slimming", "bigearthnet_txt",
                 "terrascope", "sea_undistort"):  # fmt: skip
        module = f"rsim.{name}"
        if importlib.util.find_spec(module) is None:
            continue

        def run(tmp: Path, accelerator: str, precision: str, small: bool, module: str = module) -> float:
            check = importlib.import_module(f"{module}.gpu_check")
            return float(check.run(tmp, accelerator=accelerator, precision=precision, small=small))

        CHECKS[f"rsim-{name.replace('_', '-')}"] = (module, run)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--cpu-smoke", action="store_true", help="run small models on the CPU in fp32 (tests the script)"
    )
    parser.add_argument("--only", nargs="+", metavar="PACKAGE", help="check only these packages, e.g. rsim-hyvic")
    ns = parser.parse_args(argv)
    accelerator, precision = ("cpu", "32-true") if ns.cpu_smoke else ("cuda", "16-mixed")
    if not ns.cpu_smoke and not torch.cuda.is_available():
        print("gpu_check: CUDA is not available on this machine")
        return 2
    device = torch.cuda.get_device_name(0) if not ns.cpu_smoke else "CPU smoke run"
    print(f"gpu_check: {device}, torch {torch.__version__}")
    register_package_checks()
    failed = 0
    unknown = set(ns.only or ()) - set(CHECKS)
    if unknown:
        print(f"gpu_check: unknown or uninstalled package(s) {sorted(unknown)}; known: {sorted(CHECKS)}")
        return 2
    for package, (_module, check) in CHECKS.items():
        if ns.only and package not in ns.only:
            continue
        if not ns.cpu_smoke:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                loss = check(Path(tmp), accelerator=accelerator, precision=precision, small=ns.cpu_smoke)
            peak = torch.cuda.max_memory_allocated() / 2**20 if not ns.cpu_smoke else 0.0
            print(
                f"{package}: ok ({time.perf_counter() - start:.1f} s, loss={loss:.4f}, peak {peak:.0f} MiB)", flush=True
            )
        except Exception as exc:
            failed += 1
            print(f"{package}: FAILED {type(exc).__name__}: {exc}", flush=True)
            traceback.print_exc(limit=3)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
