"""``rsim encode bigearthnet ROOT OUT.lmdb``: convert the GeoTIFF tree into an LMDB store (rico-hdl format).

Patches are read in parallel on Dask (a local cluster by default, ``--scheduler`` for a running one), written by
this process in one LMDB transaction per chunk into ``OUT.partial``, checked, and only then renamed to ``OUT``.
An interrupted run leaves no ``OUT``; rerunning resumes from ``OUT.partial`` and skips keys already written.
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rsim.core.data.bigearthnet import BigEarthNetV2Tree
from rsim.core.data.lmdb_store import REFERENCE_MAP_SUFFIX, REFERENCE_MAP_TENSOR, encode_value
from rsim.core.data.nomenclature import S1_BANDS, S2_BANDS
from rsim.core.errors import DataFormatError

MODALITIES = ("S1", "S2", "reference_maps")
DEFAULT_MAP_SIZE = 1 << 40  # address space only; the file grows with the data


@dataclass(frozen=True)
class EncodeItem:
    """One patch to encode: its store key, its modality and the name used to find its files."""

    key: str
    modality: str
    name: str


@dataclass(frozen=True)
class EncodeReport:
    """What an encode did."""

    out: Path
    written: int
    skipped: int
    total: int


def discover(root: str | os.PathLike[str], modalities: Sequence[str]) -> list[EncodeItem]:
    """List the patches of the requested modalities present in a v2 tree, sorted by key."""
    tree = BigEarthNetV2Tree(root)
    items: list[EncodeItem] = []
    for modality in modalities:
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
        if modality == "S1":
            items += [EncodeItem(n, "S1", n) for n in tree.available_s1()]
        elif modality == "S2":
            items += [EncodeItem(n, "S2", n) for n in tree.available_s2()]
        else:
            items += [EncodeItem(n + REFERENCE_MAP_SUFFIX, modality, n) for n in tree.available_reference_maps()]
    return sorted(items, key=lambda item: item.key)


def read_chunk(args: tuple[str, list[EncodeItem]]) -> list[tuple[str, bytes]]:
    """Read and serialise a chunk of patches (runs on a Dask worker)."""
    root, chunk = args
    tree = BigEarthNetV2Tree(root)
    out: list[tuple[str, bytes]] = []
    for item in chunk:
        if item.modality == "S1":
            arrays = tree.read_s1(item.name, S1_BANDS)
        elif item.modality == "S2":
            arrays = tree.read_s2(item.name, S2_BANDS)
        else:
            arrays = {REFERENCE_MAP_TENSOR: tree.read_reference_map(item.name)}
        out.append((item.key, encode_value(arrays)))
    return out


def encode_bigearthnet(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    modalities: Sequence[str] = ("S1", "S2"),
    scheduler: str | None = None,
    n_workers: int | None = None,
    processes: bool = True,
    chunk_size: int = 64,
    resume: bool = True,
    overwrite: bool = False,
    show_progress: bool = True,
) -> EncodeReport:
    """Encode the v2 GeoTIFF tree under ``root`` into the LMDB store ``out``.

    Args:
        root: BigEarthNet v2 archive root.
        out: Output store folder (e.g. ``BigEarthNet.lmdb``).
        modalities: Any of ``S1``, ``S2``, ``reference_maps``.
        scheduler: Dask scheduler address; ``None`` starts a local cluster.
        n_workers: Local cluster workers (default: one per core).
        processes: Local cluster with processes (``True``) or threads.
        chunk_size: Patches per Dask task and per LMDB transaction.
        resume: Continue from ``OUT.partial`` if present (otherwise it is discarded).
        overwrite: Replace an existing ``out``.
        show_progress: Show a progress bar.

    Returns:
        Counts of written, skipped (already present when resuming) and total patches.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is off.
        DataFormatError: The final count check fails.
    """
    import lmdb
    from rsim.core.parallel import dask_client, iter_as_completed

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    items = discover(root, modalities)
    if not items:
        raise FileNotFoundError(f"no BigEarthNet v2 patches of {list(modalities)} found under {root}")
    partial = out.with_name(out.name + ".partial")
    if partial.exists() and not resume:
        shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(partial), map_size=DEFAULT_MAP_SIZE, subdir=True, lock=True)
    try:
        with env.begin() as txn:
            done = {item.key for item in items if txn.get(item.key.encode("utf-8")) is not None}
        todo = [item for item in items if item.key not in done]
        chunks = [todo[i : i + chunk_size] for i in range(0, len(todo), chunk_size)]
        written = 0
        if chunks:
            with dask_client(scheduler, n_workers, processes=processes) as client:
                for _, records in iter_as_completed(
                    read_chunk,
                    [(str(root), chunk) for chunk in chunks],
                    client=client,
                    description=f"encoding {len(todo)} patches",
                    show_progress=show_progress,
                    weights=[len(c) for c in chunks],
                ):
                    with env.begin(write=True) as txn:
                        for key, value in records:
                            txn.put(key.encode("utf-8"), value)
                    written += len(records)
        env.sync()
        with env.begin() as txn:
            entries = txn.stat()["entries"]
            absent = [item.key for item in items if txn.get(item.key.encode("utf-8")) is None]
        if absent or entries != len(items):
            raise DataFormatError(
                f"{partial}: count check failed: {entries} entries for {len(items)} patches, {len(absent)} absent "
                f"(e.g. {absent[:3]})"
            )
    finally:
        env.close()
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return EncodeReport(out=out, written=written, skipped=len(done), total=len(items))


def encode_main(argv: list[str]) -> int:
    """Encode a dataset into an LMDB store (rsim encode bigearthnet ROOT OUT.lmdb)."""
    parser = argparse.ArgumentParser(prog="rsim encode", description=__doc__)
    parser.add_argument("dataset", choices=["bigearthnet"], help="dataset layout to encode")
    parser.add_argument("root", help="BigEarthNet v2 archive root (BigEarthNet-S1/, BigEarthNet-S2/, Reference_Maps/)")
    parser.add_argument("out", help="output LMDB folder, e.g. BigEarthNet.lmdb")
    parser.add_argument("--modalities", nargs="+", default=["S1", "S2"], choices=MODALITIES)
    parser.add_argument("--scheduler", default=None, help="Dask scheduler address (default: a local cluster)")
    parser.add_argument("--workers", type=int, default=None, help="local cluster workers (default: cores)")
    parser.add_argument("--threads", action="store_true", help="local cluster of threads instead of processes")
    parser.add_argument("--chunk-size", type=int, default=64)
    parser.add_argument("--no-resume", action="store_true", help="discard OUT.partial instead of resuming")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    ns = parser.parse_args(argv)
    report = encode_bigearthnet(
        ns.root,
        ns.out,
        modalities=ns.modalities,
        scheduler=ns.scheduler,
        n_workers=ns.workers,
        processes=not ns.threads,
        chunk_size=ns.chunk_size,
        resume=not ns.no_resume,
        overwrite=ns.overwrite,
        show_progress=not ns.quiet,
    )
    print(
        f"wrote {report.out}: {report.total} entries ({report.written} encoded, {report.skipped} resumed from "
        f"{report.out.name}.partial)"
    )
    return 0


__all__ = ["S2_BANDS", "EncodeReport", "discover", "encode_bigearthnet", "encode_main"]
