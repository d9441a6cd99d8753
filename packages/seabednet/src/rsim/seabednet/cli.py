"""``seabednet`` console script: LightningCLI (fit/validate/test/predict/train) plus the package verbs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rsim.core.cli import build_cli
from rsim.seabednet.predict import MapPredictor, write_outputs

__all__ = ["main"]


def import_weights_main(argv: list[str]) -> int:
    """Convert an original Seabed-Net checkpoint (.pth) to .safetensors."""
    from rsim.seabednet.models.convert import convert_checkpoint

    p = argparse.ArgumentParser(prog="seabednet import-weights", description=import_weights_main.__doc__)
    p.add_argument("src", help="original .pth (state dict or checkpoint dict)")
    p.add_argument("dst", help="output .safetensors")
    p.add_argument("--trust-pickle", action="store_true", help="allow full unpickling (pickled model objects)")
    a = p.parse_args(argv)
    try:
        config = convert_checkpoint(a.src, a.dst, trust_pickle=a.trust_pickle)
    except (FileNotFoundError, ValueError) as exc:
        print(f"seabednet import-weights: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {a.dst} ({', '.join(f'{k}={v}' for k, v in config.items())})")
    return 0


def generate_demo_data_main(argv: list[str]) -> int:
    """Write a synthetic dataset in the MagicBathyNet layout."""
    from rsim.seabednet.data.testing import write_magicbathynet

    p = argparse.ArgumentParser(prog="seabednet generate-demo-data", description=generate_demo_data_main.__doc__)
    p.add_argument("root", help="output folder")
    p.add_argument("--sites", nargs="+", default=["agia_napa"], choices=["agia_napa", "puck_lagoon"])
    p.add_argument("--modalities", nargs="+", default=["spot6"], choices=["aerial", "s2", "spot6"])
    p.add_argument("--num-patches", type=int, default=10)
    p.add_argument("--size", type=int, default=None, help="patch side (default: native size per modality)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scene", default=None, help="also write one large image GeoTIFF here for `predict`")
    p.add_argument("--scene-size", type=int, default=100)
    a = p.parse_args(argv)
    root = write_magicbathynet(
        a.root, sites=a.sites, modalities=a.modalities, num_patches=a.num_patches, size=a.size, seed=a.seed
    )
    n = sum(1 for _ in root.rglob("*.tif"))
    print(f"wrote {n} GeoTIFFs under {root}")
    if a.scene:
        from rsim.seabednet.data.testing import write_scene

        write_scene(a.scene, site=a.sites[0], size=a.scene_size, seed=a.seed)
        print(f"wrote {a.scene} ({a.scene_size}x{a.scene_size})")
    return 0


def predict_main(argv: list[str]) -> int:
    """Predict depth and seabed-class maps for a GeoTIFF of any size."""
    import numpy as np
    import rasterio

    p = argparse.ArgumentParser(prog="seabednet predict", description=predict_main.__doc__)
    p.add_argument("input", help="image GeoTIFF")
    p.add_argument("--ckpt", required=True, help="Lightning .ckpt of SeabedNetTask, or a converted .safetensors")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--bands", default=None, help="1-based bands to use, e.g. 1,2,3 (default: all)")
    p.add_argument("--tile", type=int, default=None, help="native window side (default: from the checkpoint)")
    p.add_argument("--overlap", type=int, default=None, help="window overlap in pixels (default: tile // 4)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--site", default=None, choices=["agia_napa", "puck_lagoon"], help="for .safetensors weights")
    p.add_argument("--norm-param", default=None, help="norm_param file (2 x C) for .safetensors weights")
    a = p.parse_args(argv)
    try:
        src = Path(a.input)
        if not src.is_file():
            raise FileNotFoundError(f"{src}: input GeoTIFF not found")
        with rasterio.open(src) as ds:
            bands = [int(b) for b in a.bands.split(",")] if a.bands else list(range(1, ds.count + 1))
            if max(bands) > ds.count:
                raise ValueError(f"{src}: has {ds.count} bands, --bands asks for {bands}")
            image = ds.read(bands).astype(np.float32)
            profile = dict(ds.profile)
        predictor, site = _load_predictor(a)
        predictor.batch_size = a.batch_size
        depth, classes, valid = predictor.predict_array(image, str(src))
        paths = write_outputs(a.out_dir, src.stem, profile, depth, classes, valid, site=site)
    except (FileNotFoundError, ValueError) as exc:
        print(f"seabednet predict: error: {exc}", file=sys.stderr)
        return 1
    if depth is None:
        summary = "classes only (segmentation network)"
    else:
        d = depth[valid]
        summary = f"depth {d.min():.2f}..{d.max():.2f} m" if d.size else "no valid pixels"
    print(f"{src.name}: {image.shape[2]}x{image.shape[1]} px, tile {predictor.tile}, {summary}")
    for kind, path in paths.items():
        print(f"  {kind:<8} {path}")
    return 0


def _load_predictor(a: argparse.Namespace) -> tuple[MapPredictor, str | None]:
    import numpy as np
    import torch
    from rsim.seabednet.data.magicbathynet import SITES, site_spec

    ckpt = Path(a.ckpt)
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: checkpoint not found")
    if ckpt.suffix == ".safetensors":
        from rsim.seabednet.models.convert import load_converted

        if a.site is None or a.norm_param is None:
            raise ValueError(f"{ckpt}: safetensors weights need --site and --norm-param")
        model = load_converted(ckpt, reference_compatible=True, map_location=a.device)
        norm = np.loadtxt(a.norm_param, ndmin=2).astype(np.float32)
        spec = site_spec(a.site)
        tile = a.tile or 256
        return (
            MapPredictor(
                model,
                torch.from_numpy(norm[:, : model.in_channels]),
                spec.depth_scale,
                tile,
                a.overlap if a.overlap is not None else tile // 4,
                undefined_index=spec.undefined_index,
            ),
            a.site,
        )
    from rsim.seabednet.tasks import ARCHITECTURES, SeabedNetTask

    task = SeabedNetTask.load_from_checkpoint(ckpt, map_location=a.device)
    task.eval()
    if task.norm_param is None:
        raise ValueError(f"{ckpt}: checkpoint has no normalisation parameters (train with the datamodule)")
    tile = a.tile or task.native_tile or 256
    site = next((name for name, s in SITES.items() if abs(s.depth_scale - task.depth_scale) < 1e-6), None)
    return (
        MapPredictor(
            task.net,
            task.norm_param,
            task.depth_scale,
            tile,
            a.overlap if a.overlap is not None else tile // 4,
            input_size=task.hparams["input_size"],
            channel_order=task.channel_order,
            undefined_index=task.hparams["undefined_index"],
            upsample_mode=task.upsample_mode,
            name=ARCHITECTURES[task.hparams.get("architecture", "seabednet")],
        ),
        site,
    )


def baselines_main(argv: list[str]) -> int:
    """Fit/evaluate Stumpf, Lyzenga and random-forest baselines (+ trained checkpoints) into one table."""
    from rsim.seabednet.baselines import evaluate_network, format_table, run_baselines
    from rsim.seabednet.data.magicbathynet import MagicBathyNetReader, site_spec

    p = argparse.ArgumentParser(prog="seabednet baselines", description=baselines_main.__doc__)
    p.add_argument("--root", required=True, help="MagicBathyNet root (official layout)")
    p.add_argument("--site", default="agia_napa", choices=["agia_napa", "puck_lagoon"])
    p.add_argument("--modality", default="spot6", choices=["aerial", "s2", "spot6"])
    p.add_argument("--split-source", default="pixel_class", choices=["pixel_class", "bathymetry"])
    p.add_argument("--channel-order", default="native", choices=["native", "reverse"])
    p.add_argument(
        "--ckpt",
        nargs="*",
        default=[],
        help="SeabedNetTask checkpoints to add to the table (Seabed-Net or a single-task baseline architecture)",
    )
    p.add_argument("--out", default=None, help="also write the Markdown table here")
    a = p.parse_args(argv)
    try:
        reader = MagicBathyNetReader(a.root, a.site, a.modality)
        train, test = reader.split(a.split_source)
        rows = run_baselines(reader, train, test, channel_order=a.channel_order)
        undefined = site_spec(a.site).undefined_index
        for ck in a.ckpt:
            ns = argparse.Namespace(ckpt=ck, device="cpu", tile=None, overlap=None, site=a.site, norm_param=None)
            predictor, _ = _load_predictor(ns)
            predictor.name = f"{predictor.name} ({Path(ck).name})"
            rows.append(evaluate_network(predictor, reader, test, undefined))
    except (FileNotFoundError, ValueError) as exc:
        print(f"seabednet baselines: error: {exc}", file=sys.stderr)
        return 1
    table = format_table(rows)
    print(f"{a.site} / {a.modality}: {len(train)} train, {len(test)} test patches ({a.split_source} split)")
    print(table)
    if a.out:
        from rsim.core.io import atomic_path

        with atomic_path(a.out) as tmp:
            tmp.write_text(table + "\n")
    return 0


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``seabednet`` console script."""
    from rsim.seabednet.data.datamodule import MagicBathyNetDataModule
    from rsim.seabednet.tasks import SeabedNetTask

    argv = list(sys.argv[1:] if args is None else args)
    # `seabednet predict in.tif --ckpt ...` is the map-prediction verb; `seabednet predict --config ...`
    # (options first) stays Lightning's predict subcommand.
    if len(argv) > 1 and argv[0] == "predict" and not argv[1].startswith("-"):
        return predict_main(argv[1:])
    return build_cli(
        prog="seabednet",
        model_class=SeabedNetTask,
        datamodule_class=MagicBathyNetDataModule,
        verbs={
            "import-weights": import_weights_main,
            "predict-map": predict_main,
            "generate-demo-data": generate_demo_data_main,
            "baselines": baselines_main,
        },
        args=args,
    )
