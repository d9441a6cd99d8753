"""HyVIC codec benchmark (CPU): throughput vs mbt2018-mean, equal-budget BD-PSNR, big-image peak memory.

Run from the repository root:

    uv run --all-packages python benchmarks/hyvic_codec.py --input shared/data/s2-l1c-crop --grid 20
    uv run --all-packages python benchmarks/hyvic_codec.py --train-seconds 60  # + BD-PSNR, equal CPU budgets
    uv run --all-packages python benchmarks/hyvic_codec.py --big               # + 1024x1024x202 peak RSS

Throughput counts the raw input at its native dtype (uint16 for the Sentinel-2 crop: 2 bytes per sample),
decoded output included in the decode time; one thread per process unless --threads is given. The table also
gives the share of the time spent in the rANS entropy coder and the model FLOPs per input pixel
(``torch.utils.flop_counter``), which explain the speed gap between the two models.

The training budget is CPU time of this process (``time.process_time``), not wall time, so that the two
models get the same compute on a shared machine. BD-PSNR/BD-rate use ``rsim.core.metrics`` on the monotone
hull of each curve (``rsim.hyvic.evaluate.monotone_hull``: the operating points not beaten by a cheaper one);
points dropped from the hull are listed. With ``--no-hull`` the raw curves are used.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rsim.hyvic.checkpoint import load_model, save_model
from rsim.hyvic.codec import compress_file, decode_to_array, open_source, quantised_forward
from rsim.hyvic.models.baselines import Mbt2018MeanC
from rsim.hyvic.models.hyvic import HyVIC, HyVICConfig


def hyvic_model(c: int, n: int, m: int, s: int) -> HyVIC:
    return HyVIC(
        HyVICConfig(
            in_channels=c,
            num_stages=s,
            width=n,
            latent_channels=m,
            hyper_channels=n,
            depths=[2] * s,
            heads=[4] * s,
            drop_path=0.0,
        )
    )


@contextlib.contextmanager
def coder_timer():
    """Accumulate the seconds spent inside the rANS coder calls (encode and decode)."""
    try:
        from rsim.hyvic.entropy import _CachedTables
    except ImportError:  # older package version without the shared coder mixin
        yield [0.0]
        return
    acc = [0.0]
    orig_enc, orig_dec = _CachedTables._encode, _CachedTables._decode

    def enc(self, *a):
        t0 = time.perf_counter()
        try:
            return orig_enc(self, *a)
        finally:
            acc[0] += time.perf_counter() - t0

    def dec(self, *a):
        t0 = time.perf_counter()
        try:
            return orig_dec(self, *a)
        finally:
            acc[0] += time.perf_counter() - t0

    _CachedTables._encode, _CachedTables._decode = enc, dec
    try:
        yield acc
    finally:
        _CachedTables._encode, _CachedTables._decode = orig_enc, orig_dec


def flops_per_pixel(model, c: int, tile: int) -> float:
    """Forward (g_a + h_a + h_s + g_s) FLOPs per input pixel on one tile, counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.rand(1, c, tile, tile))
    return fc.get_total_flops() / tile**2


def throughput(model, inp: str, grid: int, tile: int, repeats: int, tmp: Path, name: str) -> dict:
    save_model(tmp / f"{name}.pt", model)
    model = load_model(tmp / f"{name}.pt")
    with open_source(inp, grid=grid) as src:
        c, h, w = src.shape
        raw_mb = c * h * w * src.dtype.itemsize / 1e6
    enc, dec, coder = [], [], []
    for _ in range(repeats):
        with coder_timer() as acc:
            st = compress_file(model, inp, tmp / f"{name}.hyv", tile=tile, grid=grid)
            enc.append(st.seconds)
            t0 = time.perf_counter()
            decode_to_array(model, tmp / f"{name}.hyv")
            dec.append(time.perf_counter() - t0)
        coder.append(acc[0] / (enc[-1] + dec[-1]))
    with open_source(inp, grid=grid) as src:
        _, lik = quantised_forward(model, src, tile=tile)
    params = sum(p.numel() for p in model.parameters())
    return {
        "model": name,
        "params": params,
        "shape": [c, h, w],
        "raw_MB": raw_mb,
        "compress_MBps": raw_mb / min(enc),
        "decompress_MBps": raw_mb / min(dec),
        "bytes": st.num_bytes,
        "payload_bytes": st.payload_bytes,
        "likelihood_bytes": lik / 8,
        "coder_share": float(np.median(coder)),
        "flops_per_pixel": flops_per_pixel(model, c, tile),
    }


def train_curve(
    make,
    inp: str,
    grid: int,
    lambdas: list[float],
    seconds: float,
    tile: int,
    tmp: Path,
    name: str,
    patch: int = 64,
    batch: int = 8,
) -> dict:
    """Train one model per lambda for `seconds` of CPU time on patch x patch crops; real-bitstream RD points."""
    from rsim.hyvic.data.datamodule import RasterPatchDataset
    from rsim.hyvic.evaluate import rd_point
    from rsim.hyvic.models.hyvic import rate_bpppc

    ds = RasterPatchDataset(inp, patch, "train", val_fraction=0.0, grid=grid)
    data = torch.from_numpy(np.stack([ds[i]["image"] for i in range(len(ds))]).astype(np.float32) / 10000)
    data = data.clamp(0, 1)
    points = []
    probe = make()
    divisor = int(probe.config.divisor) if hasattr(probe, "config") else int(probe.divisor)
    if patch % divisor:
        raise ValueError(f"{name}: training patch {patch} must be a multiple of the model divisor {divisor}")
    for lmbda in lambdas:
        torch.manual_seed(0)
        model = make()
        main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
        opt = torch.optim.Adam(main, 1e-3)
        aux_opt = torch.optim.Adam([model.entropy_bottleneck.quantiles], 1e-2)
        t0, steps = time.process_time(), 0
        while time.process_time() - t0 < seconds:
            x = data[torch.randint(0, len(data), (batch,))]
            out = model(x)
            loss = rate_bpppc(out["likelihoods"], *x.shape[1:]) + lmbda * torch.mean((out["x_hat"] - x) ** 2)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(main, 1.0)
            opt.step()
            aux = model.aux_loss()
            aux_opt.zero_grad()
            aux.backward()
            aux_opt.step()
            steps += 1
        save_model(tmp / f"{name}-{lmbda}.pt", model)
        p = rd_point(load_model(tmp / f"{name}-{lmbda}.pt"), inp, tile=tile, grid=grid)
        points.append({"lambda": lmbda, "steps": steps, **p})
    return {"name": name, "points": sorted(points, key=lambda p: p["bpppc"])}


def _big_make(path: str) -> None:
    import rasterio
    from rasterio.windows import Window

    c, h, w = 202, 1024, 1024
    rng = np.random.default_rng(0)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        count=c,
        height=h,
        width=w,
        dtype="uint16",
        tiled=True,
        blockxsize=256,
        blockysize=256,
    ) as dst:
        for r in range(0, h, 256):
            for col in range(0, w, 256):
                block = (rng.random((c, 1, 1)) * 4000 + rng.random((1, 256, 256)) * 1000).astype(np.uint16)
                dst.write(block, window=Window(col, r, 256, 256))


def _big_measure(q, path: str, tile: int, width: int) -> None:
    """Fresh process: RSS after loading the model, peak RSS after coding the 1024x1024x202 file."""
    torch.set_num_threads(1)
    tmp = Path(path).parent
    save_model(tmp / "m.pt", hyvic_model(202, width, width, 2))
    model = load_model(tmp / "m.pt")
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    st = compress_file(model, path, tmp / "big.hyv", tile=tile)
    enc_s = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    n = 0
    from rsim.hyvic.codec import iter_decoded_tiles

    for _ in iter_decoded_tiles(model, tmp / "big.hyv"):
        n += 1
    dec_s = time.perf_counter() - t0
    peak_dec = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    q.put(
        {
            "shape": [202, 1024, 1024],
            "tile": tile,
            "width": width,
            "rss_before_MB": base,
            "peak_rss_MB": peak,
            "peak_rss_after_decode_MB": peak_dec,
            "whole_image_float32_MB": 202 * 1024 * 1024 * 4 / 2**20,
            "encode_s": enc_s,
            "decode_s": dec_s,
            "bytes": st.num_bytes,
        }
    )


def _run_big(tile: int, width: int) -> dict:
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="hyvic-big-") as td:
        path = str(Path(td) / "big.tif")
        p = ctx.Process(target=_big_make, args=(path,))
        p.start()
        p.join()
        q = ctx.Queue()
        p = ctx.Process(target=_big_measure, args=(q, path, tile, width))
        p.start()
        res = q.get()
        p.join()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--input", default="shared/data/s2-l1c-crop")
    ap.add_argument("--grid", type=int, default=20)
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--width", type=int, default=64, help="N of HyVIC and of mbt2018-mean")
    ap.add_argument("--latent", type=int, default=64, help="M of HyVIC and of mbt2018-mean")
    ap.add_argument("--stages", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train-seconds", type=float, default=0.0, help="per-lambda CPU budget; 0 skips BD-PSNR")
    ap.add_argument("--lambdas", default="30,100,300,1000,3000,10000,30000,100000")
    ap.add_argument("--patch", type=int, default=64, help="training crop size (a multiple of 64 for mbt2018-mean)")
    ap.add_argument("--batch", type=int, default=2, help="training batch size")
    ap.add_argument("--no-hull", action="store_true", help="BD metrics on the raw curves (no monotone hull)")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--big", action="store_true", help="peak memory for a 1024x1024x202 image")
    ap.add_argument("--only-big", action="store_true", help="skip throughput (with --big)")
    ap.add_argument("--out", default=None, help="write all results as JSON")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    results: dict = {}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        with open_source(a.input, grid=a.grid) as src:
            c = src.shape[0]
        torch.manual_seed(0)
        rows = (
            []
            if a.only_big or a.skip_throughput
            else [
                throughput(
                    hyvic_model(c, a.width, a.latent, a.stages), a.input, a.grid, a.tile, a.repeats, tmp, "hyvic"
                ),
                throughput(
                    Mbt2018MeanC(c, N=a.width, M=a.latent),
                    a.input,
                    a.grid,
                    a.tile,
                    a.repeats,
                    tmp,
                    "mbt2018-mean",
                ),
            ]
        )
        results["throughput"] = rows
        if rows:
            print(f"input {a.input} grid {a.grid} m: {rows[0]['shape']}, tile {a.tile}, threads {a.threads}")
            print(
                f"{'model':<14} {'params':>9} {'comp MB/s':>10} {'decomp MB/s':>12} {'file B':>9} "
                f"{'payload/lik':>12} {'rANS share':>10} {'kFLOP/px':>9}"
            )
        for r in rows:
            print(
                f"{r['model']:<14} {r['params']:>9} {r['compress_MBps']:>10.3f} "
                f"{r['decompress_MBps']:>12.3f} "
                f"{r['bytes']:>9} {r['payload_bytes'] / r['likelihood_bytes']:>12.4f} "
                f"{r['coder_share']:>10.3f} {r['flops_per_pixel'] / 1e3:>9.1f}"
            )
        if a.train_seconds > 0:
            from rsim.core.metrics import bd_psnr, bd_rate
            from rsim.hyvic.evaluate import monotone_hull

            lambdas = [float(v) for v in a.lambdas.split(",")]
            hv = train_curve(
                lambda: hyvic_model(c, a.width, a.latent, a.stages),
                a.input,
                a.grid,
                lambdas,
                a.train_seconds,
                a.tile,
                tmp,
                "hyvic",
                a.patch,
                a.batch,
            )
            if a.out:  # keep the first curve if the second run fails
                Path(a.out).write_text(json.dumps({**results, "rd": [hv]}, indent=2))
            mb = train_curve(
                lambda: Mbt2018MeanC(c, N=a.width, M=a.latent),
                a.input,
                a.grid,
                lambdas,
                a.train_seconds,
                a.tile,
                tmp,
                "mbt2018-mean",
                a.patch,
                a.batch,
            )
            results["rd"] = [hv, mb]
            for cur in (hv, mb):
                print(
                    f"{cur['name']}: "
                    + "; ".join(
                        f"lambda {p['lambda']:g} ({p['steps']} steps): {p['bpppc']:.4f} bpppc "
                        f"{p['psnr']:.2f} dB "
                        f"{p['sa']:.3f} deg"
                        for p in cur["points"]
                    )
                )
            fit = {}
            for cur in (hv, mb):
                pts, dropped = (cur["points"], []) if a.no_hull else monotone_hull(cur["points"])
                fit[cur["name"]] = pts
                if dropped:
                    print(
                        f"{cur['name']}: monotone hull drops lambda "
                        + ", ".join(f"{p['lambda']:g} ({p['bpppc']:.4f} bpppc, {p['psnr']:.2f} dB)" for p in dropped)
                    )
            results["hull"] = not a.no_hull
            try:
                r0 = [p["bpppc"] for p in fit["mbt2018-mean"]]
                d0 = [p["psnr"] for p in fit["mbt2018-mean"]]
                r1 = [p["bpppc"] for p in fit["hyvic"]]
                d1 = [p["psnr"] for p in fit["hyvic"]]
                results["bd_psnr_db"] = bd_psnr(r0, d0, r1, d1)
                results["bd_rate_pct"] = bd_rate(r0, d0, r1, d1)
                print(
                    f"BD-PSNR HyVIC vs mbt2018-mean: {results['bd_psnr_db']:+.3f} dB, "
                    f"BD-rate {results['bd_rate_pct']:+.1f} %"
                )
            except ValueError as err:
                print(f"BD metrics not computable after {a.train_seconds} CPU s per lambda: {err}")
    if a.big:
        big = _run_big(256, a.width)
        results["big"] = big
        print(
            f"1024x1024x202 uint16, tile 256, HyVIC N=M={a.width}: peak RSS {big['peak_rss_MB']:.0f} MB "
            f"(after setup {big['rss_before_MB']:.0f} MB; whole image as float32 would be "
            f"{big['whole_image_float32_MB']:.0f} MB), encode {big['encode_s']:.1f} s, decode {big['decode_s']:.1f} s, "
            f"peak after decode {big['peak_rss_after_decode_MB']:.0f} MB"
        )
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
