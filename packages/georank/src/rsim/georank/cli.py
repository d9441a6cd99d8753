"""``georank`` console script: Lightning fit/validate/test/predict plus coords, fixture, export, knn, experiment."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from rsim.core.cli import build_cli
from torch import Tensor

if TYPE_CHECKING:
    from rsim.georank.data import BigEarthNetGeoDataModule


def coords_main(argv: list[str]) -> int:
    """Write patch/location centres (lat, lon) of a BigEarthNet v2 or SSL4EO-S12 tree to parquet (Dask)."""
    from rsim.core.data import BigEarthNetV2Tree, load_metadata
    from rsim.core.data.bigearthnet import find_metadata
    from rsim.core.parallel import dask_client
    from rsim.georank.data.coords import benv2_coordinates, ssl4eo_coordinates, write_coordinates

    p = argparse.ArgumentParser(prog="georank coords", description=coords_main.__doc__)
    p.add_argument("root", help="BigEarthNet v2 archive root, or the SSL4EO-S12 folder holding s2a/")
    p.add_argument("out", help="output parquet (patch_id, lat, lon); SSL4EO: patch_id = location folder")
    p.add_argument("--layout", choices=["benv2", "ssl4eo"], default="benv2")
    p.add_argument("--modality", default="s2a", help="SSL4EO-S12 modality folder")
    p.add_argument("--from-metadata", action="store_true", help="all patches of metadata.parquet, not those on disk")
    p.add_argument("--band", default="B02")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (default: local cluster)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--chunk-size", type=int, default=512)
    p.add_argument("--threads", action="store_true", help="local cluster of threads instead of processes")
    args = p.parse_args(argv)
    if args.layout == "ssl4eo":
        from rsim.georank.data.ssl4eo import SSL4EOS12Tree

        ids = SSL4EOS12Tree(args.root, args.modality).locations
    elif args.from_metadata:
        ids = sorted(load_metadata(find_metadata(args.root), filter_snow_cloud=False)["patch_id"].astype(str))
    else:
        ids = sorted(BigEarthNetV2Tree(args.root).available_s2())
    if not ids:
        raise SystemExit(f"georank coords: no S2 patch under {args.root}/BigEarthNet-S2")
    with dask_client(args.scheduler, args.workers, processes=not args.threads) as client:
        if args.layout == "ssl4eo":
            coords = ssl4eo_coordinates(args.root, ids, modality=args.modality, band=args.band, client=client,
                                        chunk_size=args.chunk_size, show_progress=True)  # fmt: skip
        else:
            coords = benv2_coordinates(args.root, ids, band=args.band, client=client, chunk_size=args.chunk_size,
                                       show_progress=True)  # fmt: skip
    write_coordinates(args.out, ids, coords)
    print(f"wrote {args.out}: {len(ids)} patches, lat {coords[:, 0].min():.4f}…{coords[:, 0].max():.4f}, "
          f"lon {coords[:, 1].min():.4f}…{coords[:, 1].max():.4f}")  # fmt: skip
    return 0


def fixture_main(argv: list[str]) -> int:
    """Generate geo-referenced test data: an SSL4EO-S12 tree or a BigEarthNet v2 tree."""
    p = argparse.ArgumentParser(prog="georank fixture", description=fixture_main.__doc__)
    p.add_argument("kind", choices=["ssl4eo", "benv2", "eurosat"])
    p.add_argument("out")
    p.add_argument("--locations", type=int, default=32,
                   help="ssl4eo locations / benv2 training patches / eurosat files per class")  # fmt: skip
    p.add_argument("--timestamps", type=int, default=2)
    p.add_argument("--size", type=int, default=132, help="ssl4eo 10 m patch size (real data: 264)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.kind == "ssl4eo":
        from rsim.georank.data.testing import write_ssl4eo_fixture

        centres = write_ssl4eo_fixture(args.out, num_locations=args.locations, num_timestamps=args.timestamps,
                                       size=args.size, seed=args.seed)  # fmt: skip
        print(f"wrote {args.out}/s2a: {len(centres)} locations × {args.timestamps} timestamps")
    elif args.kind == "eurosat":
        from rsim.georank.data.testing import write_eurosat_fixture

        folder = write_eurosat_fixture(args.out, per_class=args.locations, seed=args.seed)
        print(f"wrote {folder}: 10 classes × {args.locations} 13-band 64×64 GeoTIFFs")
    else:
        from rsim.core.testing import write_benv2_fixture

        n = args.locations
        splits = {"train": n, "validation": max(1, n // 2), "test": max(1, n // 4)}
        write_benv2_fixture(args.out, splits=splits, snow_cloud=0, seed=args.seed, with_s1=False)
        print(f"wrote {args.out}: BigEarthNet v2 tree, splits {splits}")
    return 0


def export_main(argv: list[str]) -> int:
    """Export the backbone of a GeoRank SSL checkpoint as safetensors (for rsim-core linear probes)."""
    from rsim.core.io import atomic_path
    from safetensors.torch import save_file

    p = argparse.ArgumentParser(prog="georank export", description=export_main.__doc__)
    p.add_argument("checkpoint")
    p.add_argument("out")
    args = p.parse_args(argv)
    ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise SystemExit(f"georank export: {args.checkpoint} holds no 'state_dict'")
    backbone = {k[len("backbone.") :]: v.contiguous() for k, v in state.items() if k.startswith("backbone.")}
    if not backbone:
        raise SystemExit(f"georank export: {args.checkpoint} has no 'backbone.*' tensors")
    with atomic_path(args.out) as tmp:
        save_file(backbone, str(tmp))
    print(f"wrote {args.out}: {len(backbone)} tensors")
    return 0


def _make_dm(root: str, img_size: int, batch_size: int, coords_file: str | None = None) -> BigEarthNetGeoDataModule:
    from rsim.georank.data import BigEarthNetGeoDataModule, Views

    return BigEarthNetGeoDataModule(
        root=root, coords_file=coords_file, img_size=img_size, batch_size=batch_size, num_workers=0,
        limit_to_available=True, views=Views(), pin_memory=False,
    )  # fmt: skip


def _knn_eval(
    features: Callable[[Tensor], Tensor], dm: BigEarthNetGeoDataModule, k: int, temperature: float
) -> dict[str, float]:
    from rsim.georank.evaluation import extract_features, knn_multilabel

    dm.setup(None)

    def transform(batch: dict) -> dict:
        return dm.transform_batch(batch, train=False)

    tf, ty = extract_features(features, dm.train_dataloader(), transform)
    qf, qy = extract_features(features, dm.test_dataloader(), transform)
    return knn_multilabel(tf, ty, qf, qy, k=k, temperature=temperature)


def _knn_eurosat(features: Callable[[Tensor], Tensor], root: str, img_size: int, batch_size: int, k: int,
                 temperature: float) -> dict[str, float]:  # fmt: skip
    from rsim.georank.data.eurosat import EuroSATDataModule
    from rsim.georank.evaluation import extract_features, knn_accuracy

    dm = EuroSATDataModule(root, img_size=img_size, batch_size=batch_size, num_workers=0)
    dm.setup()

    def transform(batch: dict) -> dict:
        return dm.transform_batch(batch, train=False)

    tf, ty = extract_features(features, dm.train_dataloader(), transform)
    qf, qy = extract_features(features, dm.test_dataloader(), transform)
    return knn_accuracy(tf, ty, qf, qy, k=k, temperature=temperature, num_classes=dm.num_classes)


def knn_main(argv: list[str]) -> int:
    """KNN evaluation (train → test split) of exported backbone weights: BigEarthNet v2 (mAP) or EuroSAT (accuracy)."""
    from rsim.core.tasks.classification import load_state_dict_file
    from rsim.georank.models import build_backbone

    p = argparse.ArgumentParser(prog="georank knn", description=knn_main.__doc__)
    p.add_argument("weights", help="safetensors written by `georank export`")
    p.add_argument("root", help="BigEarthNet v2 archive root, or the folder holding EuroSAT_MS/")
    p.add_argument("--dataset", choices=["benv2", "eurosat"], default="benv2")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--coords-file", default=None)
    p.add_argument("--img-size", type=int, default=120)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--temperature", type=float, default=0.9)
    args = p.parse_args(argv)
    model, _ = build_backbone(args.backbone, 10)
    model.load_state_dict(load_state_dict_file(args.weights))
    model.eval()
    if args.dataset == "eurosat":
        result = _knn_eurosat(model, args.root, args.img_size, args.batch_size, args.k, args.temperature)
    else:
        result = _knn_eval(model, _make_dm(args.root, args.img_size, args.batch_size, args.coords_file), args.k,
                           args.temperature)  # fmt: skip
    for key, value in result.items():
        print(f"{key}: {value:.4f}")
    return 0


def experiment_main(argv: list[str]) -> int:
    """Compare each SSL method with and without GeoRank (same data, seed, budget); print the table."""
    from lightning.pytorch import Trainer, seed_everything
    from rich.console import Console
    from rich.table import Table
    from rsim.georank.tasks import METHODS, GeoRankConfig

    p = argparse.ArgumentParser(prog="georank experiment", description=experiment_main.__doc__)
    p.add_argument("--root", default=None, help="BigEarthNet v2 tree (default: a generated fixture)")
    p.add_argument("--patches", type=int, default=48, help="training patches of the generated fixture")
    p.add_argument("--methods", nargs="+", default=["moco", "byol", "simclr"], choices=sorted(METHODS))
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--soft-rank-eps", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--knn-temperature", type=float, default=0.9)
    p.add_argument("--accelerator", default="auto")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="georank-exp-") as tmp:
        root = args.root
        if root is None:
            fixture_main(["benv2", f"{tmp}/benv2", "--locations", str(args.patches), "--seed", str(args.seed)])
            root = f"{tmp}/benv2"
        table = Table(title=f"GeoRank on/off: {args.steps} steps, batch {args.batch_size}, seed {args.seed}")
        for col in ("method", "georank", "train/ssl", "train/georank", "train/aux", "kNN mAP macro", "kNN mAP micro"):
            table.add_column(col, justify="right")
        for method in args.methods:
            for enabled in (False, True):
                seed_everything(args.seed, verbose=False)
                dm = _make_dm(root, args.img_size, args.batch_size)
                geo = GeoRankConfig(enabled=enabled, alpha=args.alpha, soft_rank_eps=args.soft_rank_eps)
                model = METHODS[method](backbone=args.backbone, in_channels=10, georank=geo)
                trainer = Trainer(accelerator=args.accelerator, devices=1, max_steps=args.steps, logger=False,
                                  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                  limit_val_batches=0, default_root_dir=tmp)  # fmt: skip
                trainer.fit(model, dm)
                m = trainer.callback_metrics
                model.eval()
                knn = _knn_eval(model.features, _make_dm(root, args.img_size, args.batch_size), args.k,
                                args.knn_temperature)  # fmt: skip
                geo_v = f"{float(m['train/georank']):.4f}" if "train/georank" in m else "—"
                aux_v = f"{float(m['train/aux']):.4f}" if "train/aux" in m else "—"  # GASSL geo-classification
                table.add_row(method, "on" if enabled else "off", f"{float(m['train/ssl']):.4f}", geo_v, aux_v,
                              f"{knn['knn/map_macro']:.4f}", f"{knn['knn/map_micro']:.4f}")  # fmt: skip
        Console().print(table)
    return 0


def main(args: Sequence[str] | None = None) -> int:
    """Entry point of the ``georank`` console script."""
    verbs = {
        "coords": coords_main,
        "fixture": fixture_main,
        "export": export_main,
        "knn": knn_main,
        "experiment": experiment_main,
    }
    return build_cli(prog="georank", verbs=verbs, args=list(args) if args is not None else None)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())


__all__ = ["main"]
