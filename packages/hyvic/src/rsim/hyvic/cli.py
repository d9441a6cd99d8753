"""``hyvic`` console script: LightningCLI (fit/validate/test/predict) plus codec and evaluation verbs."""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from rsim.core.cli import build_cli
from rsim.hyvic.checkpoint import load_model, model_architecture, model_config, save_model
from rsim.hyvic.data.datamodule import HyperspectralDataModule
from rsim.hyvic.tasks import HyVICTask


def compress_main(argv: list[str]) -> int:
    """Compress a GeoTIFF (or Sentinel-2 band folder) into a .hyv file."""
    from rsim.hyvic.codec import compress_file

    ap = argparse.ArgumentParser(prog="hyvic compress", description=compress_main.__doc__)
    ap.add_argument("input", help="multi-band GeoTIFF, or a Sentinel-2 folder with bands.json")
    ap.add_argument("output", help="output .hyv file")
    ap.add_argument("--model", required=True, help="model file (hyvic export) or HyVICTask Lightning checkpoint")
    ap.add_argument("--tile", type=int, default=256, help="tile size in pixels (multiple of the model divisor)")
    ap.add_argument("--scale", type=float, default=None, help="value that maps to 1.0 (default 10000 for ints)")
    ap.add_argument("--grid", type=int, default=10, choices=(10, 20), help="Sentinel-2 folder grid (m)")
    ap.add_argument(
        "--scale-index",
        default="nearest",
        choices=("nearest", "up"),
        help="y scale -> CDF table index: nearest in log scale, or CompressAI's round-up (larger files)",
    )
    a = ap.parse_args(argv)
    model = load_model(a.model)
    st = compress_file(model, a.input, a.output, tile=a.tile, scale=a.scale, grid=a.grid, scale_index=a.scale_index)
    c, h, w = st.shape
    print(
        f"{a.input} ({c}x{h}x{w}) -> {st.path}: {st.num_bytes} bytes, {st.bpppc:.4f} bpppc, "
        f"CR {st.compression_ratio:.1f}, {st.seconds:.2f} s"
    )
    return 0


def decompress_main(argv: list[str]) -> int:
    """Decompress a .hyv file into a GeoTIFF."""
    from rsim.hyvic.codec import decompress_file

    ap = argparse.ArgumentParser(prog="hyvic decompress", description=decompress_main.__doc__)
    ap.add_argument("input", help=".hyv file")
    ap.add_argument("output", help="output GeoTIFF")
    ap.add_argument("--model", required=True, help="the model file used to compress")
    a = ap.parse_args(argv)
    info = decompress_file(load_model(a.model), a.input, a.output)
    print(
        f"{a.input} -> {a.output}: {info['bands']}x{info['height']}x{info['width']} {info['dtype']}, "
        f"{info['seconds']:.2f} s"
    )
    return 0


def export_main(argv: list[str]) -> int:
    """Export a HyVICTask checkpoint to a codec model file (CDF tables built)."""
    ap = argparse.ArgumentParser(prog="hyvic export", description=export_main.__doc__)
    ap.add_argument("checkpoint")
    ap.add_argument("output")
    a = ap.parse_args(argv)
    model = load_model(a.checkpoint)
    save_model(a.output, model)
    print(f"{a.checkpoint} -> {a.output} ({model_architecture(model)} {model_config(model)})")
    return 0


def rd_main(argv: list[str]) -> int:
    """Evaluate models (one per rate) on an image: PSNR, SA, bpppc, CR, encode/decode time."""
    from rsim.hyvic.evaluate import plot_rd, rd_curve, write_json

    ap = argparse.ArgumentParser(prog="hyvic rd", description=rd_main.__doc__)
    ap.add_argument("--models", nargs="+", required=True, help="model files or checkpoints (one per lambda)")
    ap.add_argument("--input", required=True, help="GeoTIFF or Sentinel-2 folder")
    ap.add_argument("--name", default=None, help="curve name (default: first model's folder name)")
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--grid", type=int, default=10, choices=(10, 20))
    ap.add_argument("--scale", type=float, default=None)
    ap.add_argument("--scale-index", default="nearest", choices=("nearest", "up"), help="see `hyvic compress -h`")
    ap.add_argument("--out", required=True, help="RD curve JSON")
    ap.add_argument("--plot", default=None, help="RD plot PNG")
    a = ap.parse_args(argv)
    models = [(str(p), load_model(p)) for p in a.models]
    name = a.name or Path(a.models[0]).parent.name or "model"
    curve = rd_curve(models, a.input, name=name, tile=a.tile, grid=a.grid, scale=a.scale, scale_index=a.scale_index)
    write_json(a.out, curve)
    print(f"{'model':<40} {'bpppc':>8} {'lik.bpppc':>9} {'CR':>8} {'PSNR':>7} {'SA':>7} {'enc s':>6} {'dec s':>6}")
    for p in curve["points"]:
        print(
            f"{Path(p['model']).name:<40} {p['bpppc']:8.4f} {p['bpppc_likelihood']:9.4f} {p['cr']:8.1f} "
            f"{p['psnr']:7.2f} {p['sa']:7.3f} {p['encode_s']:6.2f} {p['decode_s']:6.2f}"
        )
    if a.plot:
        plot_rd([curve], a.plot, title=name)
        print(f"RD plot: {a.plot}")
    return 0


def select_main(argv: list[str]) -> int:
    """Metric-driven selection: BD-PSNR/BD-SA of each (S, N, M) curve against an anchor; table + RD plot."""
    from rsim.hyvic.evaluate import (
        bd_table,
        markdown_table,
        plot_rd,
        rd_curve,
        read_curve,
        select_best,
        write_json,
    )

    ap = argparse.ArgumentParser(prog="hyvic select", description=select_main.__doc__)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--curves", nargs="+", help="RD curve JSONs written by `hyvic rd` (one per configuration)")
    src.add_argument("--models", nargs="+", help="model files; grouped by configuration, evaluated on --input")
    ap.add_argument("--input", help="image for --models")
    ap.add_argument("--anchor", required=True, help="anchor RD curve JSON (e.g. the mbt2018-mean baseline)")
    ap.add_argument("--metric", default="bd_psnr", choices=("bd_psnr", "bd_sa", "bd_rate"))
    ap.add_argument(
        "--hull",
        action="store_true",
        help="fit each curve's monotone hull (drop points beaten by a cheaper one) instead of refusing it",
    )
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--grid", type=int, default=10, choices=(10, 20))
    ap.add_argument("--out", required=True, help="selection table (Markdown); a .json twin is written beside it")
    ap.add_argument("--plot", default=None, help="RD plot PNG of all curves and the anchor")
    a = ap.parse_args(argv)
    if a.curves:
        curves = [read_curve(p) for p in a.curves]
    else:
        if not a.input:
            ap.error("--models needs --input")
        groups: dict[str, list] = defaultdict(list)
        for p in a.models:
            m = load_model(p)
            groups[json.dumps([model_architecture(m), model_config(m)], sort_keys=True)].append((str(p), m))
        curves = []
        for key, models in groups.items():
            arch, cfg = json.loads(key)
            name = f"{arch} S{cfg.get('num_stages', '-')} N{cfg.get('width', cfg.get('N'))} " + (
                f"M{cfg.get('latent_channels', cfg.get('M'))}"
            )
            curves.append(rd_curve(models, a.input, name=name, tile=a.tile, grid=a.grid))
    anchor = read_curve(a.anchor)
    rows = bd_table(curves, anchor, hull=a.hull)
    best = select_best(rows, a.metric)
    table = markdown_table(rows, best)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from rsim.core.io import atomic_path

    with atomic_path(out) as tmp:
        hull_note = "; curves reduced to their monotone hull" if a.hull else ""
        tmp.write_text(f"anchor: {anchor['name']}; selection metric: {a.metric}{hull_note}\n\n{table}")
    write_json(
        out.with_suffix(".json"),
        {"anchor": anchor["name"], "metric": a.metric, "hull": a.hull, "rows": rows, "selected": best["name"]},
    )
    sys.stdout.write(table)
    print(f"selected: {best['name']} ({a.metric})")
    if a.plot:
        plot_rd([anchor, *curves], a.plot, title="metric-driven selection")
        print(f"RD plot: {a.plot}")
    return 0


def convert_main(argv: list[str]) -> int:
    """Convert HySpecNet-11k -SPECTRAL_IMAGE.TIF patches to -DATA.npy with Dask (202 bands, [0, 1])."""
    from rsim.core.parallel import dask_client, map_with_progress
    from rsim.hyvic.data.formats import convert_hyspecnet_patch

    ap = argparse.ArgumentParser(prog="hyvic convert-hyspecnet", description=convert_main.__doc__)
    ap.add_argument("root", help="HySpecNet-11k root with patches/")
    ap.add_argument("--scheduler", default=None, help="Dask scheduler address (default: local cluster)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument(
        "--threads", action="store_true", help="local cluster workers as threads in this process (no processes)"
    )
    a = ap.parse_args(argv)
    files = sorted(Path(a.root, "patches").glob("tile_*/*/*-SPECTRAL_IMAGE.TIF"))
    if not files:
        print(f"{a.root}: no patches/tile_*/*/*-SPECTRAL_IMAGE.TIF found", file=sys.stderr)
        return 1
    with dask_client(a.scheduler, a.workers, processes=not a.threads) as client:
        out = map_with_progress(convert_hyspecnet_patch, files, client=client, description="HySpecNet-11k -> npy")
    print(f"wrote {len(out)} -DATA.npy files")
    return 0


VERBS = {
    "compress": compress_main,
    "decompress": decompress_main,
    "export": export_main,
    "rd": rd_main,
    "select": select_main,
    "convert-hyspecnet": convert_main,
}


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``hyvic`` console script."""
    return build_cli(
        prog="hyvic", model_class=HyVICTask, datamodule_class=HyperspectralDataModule, verbs=VERBS, args=args
    )


__all__ = ["main"]
