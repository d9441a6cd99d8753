"""``sea-undistort`` console script: LightningCLI (fit/validate/test/predict/train) plus render, evaluate, restore."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rsim.core.cli import build_cli

__all__ = ["main"]


def render_main(argv: list[str]) -> int:
    """Render Sea-Undistort scenes with Blender/Cycles (needs the [render] extra)."""
    from rsim.sea_undistort.render.params import RenderConfig

    p = argparse.ArgumentParser(prog="sea-undistort render", description=render_main.__doc__)
    p.add_argument("out", help="output folder (released flat layout)")
    p.add_argument("--num-scenes", type=int, default=10)
    p.add_argument("--start", type=int, default=0, help="first scene index")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resolution", type=int, default=512)
    p.add_argument("--samples", type=int, default=16, help="Cycles samples per image")
    p.add_argument("--workers", type=int, default=1, help="Dask worker processes (one scene each)")
    p.add_argument("--threads-per-scene", type=int, default=1)
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    p.add_argument("--device", default="CPU", choices=["CPU", "GPU"])
    p.add_argument("--seabed-types", nargs="+", default=None, choices=["rock", "sand", "gravel", "seagrass"])
    a = p.parse_args(argv)
    import importlib.util

    # find_spec, not import: importing bpy here would change the environment that the Dask workers inherit
    if importlib.util.find_spec("bpy") is None:
        print("sea-undistort render: error: bpy is not installed; install rsim-sea-undistort[render]", file=sys.stderr)
        return 1
    from rsim.sea_undistort.render.generate import generate

    kwargs = {"seabed_types": tuple(a.seabed_types)} if a.seabed_types else {}
    config = RenderConfig(resolution=a.resolution, samples=a.samples, **kwargs)  # type: ignore[arg-type]
    records = generate(a.out, a.num_scenes, seed=a.seed, config=config, start=a.start, n_workers=a.workers,
                       threads_per_scene=a.threads_per_scene, scheduler=a.scheduler, device=a.device)  # fmt: skip
    done = [r for r in records if not r["skipped"]]
    timing = ""
    if done:
        secs = sum(r["render_seconds"] for r in done) / len(done)
        timing = f"; {secs:.1f} s per rendered scene at {a.resolution}x{a.resolution}, {a.samples} samples"
    print(f"wrote {len(done)} scenes ({len(records) - len(done)} already complete) to {a.out}{timing}")
    return 0


def evaluate_main(argv: list[str]) -> int:
    """Evaluate checkpoints on the test split and write a Markdown + JSON table."""
    from rsim.sea_undistort.evaluate import evaluate_checkpoints

    p = argparse.ArgumentParser(prog="sea-undistort evaluate", description=evaluate_main.__doc__)
    p.add_argument("root", help="dataset folder")
    p.add_argument("--model", action="append", default=[], metavar="NAME=CKPT", help="repeatable")
    p.add_argument("--out", default="sea_undistort_eval.md")
    p.add_argument("--size", type=int, default=256, help="centre-crop side")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--blacklist", default="blacklist.txt")
    p.add_argument("--test-list", default="test_list.txt")
    p.add_argument("--no-input-row", action="store_true", help="omit the unrestored input as a reference row")
    a = p.parse_args(argv)
    models = {}
    for spec in a.model:
        name, sep, path = spec.partition("=")
        if not sep:
            p.error(f"--model expects NAME=CKPT, got {spec!r}")
        models[name] = path
    try:
        rows = evaluate_checkpoints(
            a.root, models, a.out, include_input=not a.no_input_row, device=a.device, batch_size=a.batch_size,
            data_options={"size": a.size, "blacklist": a.blacklist or None, "test_list": a.test_list or None},
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:
        print(f"sea-undistort evaluate: error: {exc}", file=sys.stderr)
        return 1
    print(Path(a.out).read_text(), end="")
    print(f"wrote {a.out} and {Path(a.out).with_suffix('.json')} ({len(rows)} rows)")
    return 0


def restore_main(argv: list[str]) -> int:
    """Restore a GeoTIFF (georeferencing kept) or PNG with a trained checkpoint, tiled with overlap."""
    import numpy as np
    from rsim.sea_undistort.inference import restore_array, restore_geotiff
    from rsim.sea_undistort.masks import ThresholdMaskProvider, mask_for
    from rsim.sea_undistort.tasks import load_task

    p = argparse.ArgumentParser(prog="sea-undistort restore", description=restore_main.__doc__)
    p.add_argument("input", help="RGB GeoTIFF (.tif) or PNG")
    p.add_argument("output", help="output path (same format as the input)")
    p.add_argument("--ckpt", required=True, help="checkpoint written by `sea-undistort fit`")
    p.add_argument("--no-sunglint", default=None, help="glint-free render of the same scene (exact mask)")
    p.add_argument("--mask", default=None, help="mask image (8-bit, 255 = glint)")
    p.add_argument("--mask-lower", type=float, default=30.0, help="threshold estimator: ramp start")
    p.add_argument("--mask-upper", type=float, default=60.0, help="threshold estimator: ramp end")
    p.add_argument("--mask-background", type=int, default=31, help="threshold estimator: background window")
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--preview", default=None, help="also write a before|after PNG here")
    a = p.parse_args(argv)
    try:
        task = load_task(a.ckpt, a.device)
        provider = ThresholdMaskProvider(a.mask_lower, a.mask_upper, a.mask_background)
        src, dst = Path(a.input), Path(a.output)
        opts = {"tile": a.tile, "overlap": a.overlap, "batch_size": a.batch_size, "device": a.device}
        if src.suffix.lower() in (".tif", ".tiff"):
            mask = None
            if a.no_sunglint or a.mask:
                from rsim.core.data.geotiff import read_geotiff

                rgb8 = np.clip(read_geotiff(src, bands=[1, 2, 3])[0].transpose(1, 2, 0), 0, 255).astype(np.uint8)
                mask = mask_for(rgb8, no_sunglint=a.no_sunglint, mask_file=a.mask)
            info = restore_geotiff(src, dst, task.restore, mask_provider=provider, mask=mask, **opts)
            before = after = None
            if a.preview:
                from rsim.core.data.geotiff import read_geotiff

                before = read_geotiff(src, bands=[1, 2, 3])[0].transpose(1, 2, 0)
                after = read_geotiff(dst)[0].transpose(1, 2, 0)
        else:
            from rsim.sea_undistort.data.dataset import read_rgb
            from rsim.sea_undistort.data.testing import write_png

            before = read_rgb(src)
            mask = mask_for(before, no_sunglint=a.no_sunglint, mask_file=a.mask, provider=provider)
            out = restore_array(before.astype(np.float32) / 255, mask, task.restore, **opts)
            after = np.rint(out * 255).clip(0, 255).astype(np.uint8)
            write_png(dst, after)
            info = {"height": before.shape[0], "width": before.shape[1], "mask_fraction": float((mask > 0).mean())}
        if a.preview and before is not None and after is not None:
            from rsim.sea_undistort.data.testing import write_png

            gap = np.full((before.shape[0], 4, 3), 255, np.uint8)
            write_png(a.preview, np.concatenate([before.astype(np.uint8), gap, after.astype(np.uint8)], axis=1))
    except (FileNotFoundError, ValueError) as exc:
        print(f"sea-undistort restore: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {a.output} ({info['height']}x{info['width']}, glint mask covers {100 * info['mask_fraction']:.1f} %)"
          + (f" and {a.preview}" if a.preview else ""))  # fmt: skip
    return 0


def fixture_main(argv: list[str]) -> int:
    """Write a small synthetic dataset in the released layout (no Blender needed)."""
    from rsim.sea_undistort.data.testing import write_sea_undistort_fixture

    p = argparse.ArgumentParser(prog="sea-undistort make-fixture", description=fixture_main.__doc__)
    p.add_argument("root")
    p.add_argument("--num-scenes", type=int, default=12)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    fx = write_sea_undistort_fixture(a.root, num_scenes=a.num_scenes, size=a.size, seed=a.seed)
    print(f"wrote {len(fx.ids)} scenes ({4 * len(fx.ids)} PNGs) to {fx.root}")
    return 0


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``sea-undistort`` console script."""
    from rsim.sea_undistort.data.datamodule import SeaUndistortDataModule
    from rsim.sea_undistort.tasks import RestorationTask

    verbs = {"render": render_main, "evaluate": evaluate_main, "restore": restore_main, "make-fixture": fixture_main}
    return build_cli(prog="sea-undistort", model_class=RestorationTask, datamodule_class=SeaUndistortDataModule,
                     verbs=verbs, args=args)  # fmt: skip
