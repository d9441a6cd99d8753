"""Map prediction for a GeoTIFF of any size: sliding windows, overlap blending, georeferenced outputs."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import torch
import torch.nn.functional as F
from rasterio.errors import NotGeoreferencedWarning
from rsim.core.data.tiling import blend_weights, tile_starts
from rsim.core.errors import DataFormatError
from rsim.core.io import atomic_path
from rsim.seabednet.data.datamodule import prepare_image
from rsim.seabednet.data.magicbathynet import site_spec
from rsim.seabednet.models.unet import head_channels, network_heads
from torch import Tensor, nn

__all__ = ["MapPredictor", "write_outputs"]

DEPTH_NODATA = -9999.0
CLASS_NODATA = 255


@dataclass
class MapPredictor:
    """Sliding-window inference on native-resolution rasters (Seabed-Net or a single-task baseline network).

    Each native ``tile x tile`` window is normalised, resized to ``input_size`` (as in training), predicted,
    resized back and blended with linear-ramp weights over the ``overlap``.

    Attributes:
        model: Network (eval mode): ``SeabedNet``, ``UNetBathy`` or ``SingleTaskUNet``.
        norm_param: ``[2, C]`` image min/max.
        depth_scale: Metres per network depth unit.
        tile: Native window side (the training patch/window size).
        overlap: Overlap between windows in native pixels.
        input_size: Network input side.
        channel_order: ``native`` or ``reverse``.
        undefined_index: Class never predicted (or ``None``).
        batch_size: Windows per forward pass.
        upsample_mode: How windows smaller than ``input_size`` are enlarged (as in training); larger windows
            are downsampled with antialiased bilinear interpolation.
        name: Method name (row label of the `baselines` table).
    """

    model: nn.Module
    norm_param: Tensor
    depth_scale: float
    tile: int
    overlap: int
    input_size: int = 256
    channel_order: str = "native"
    undefined_index: int | None = None
    batch_size: int = 4
    upsample_mode: str = "nearest"
    name: str = "Seabed-Net"

    @torch.no_grad()
    def predict_array(
        self, image: np.ndarray, source: str = "input"
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
        """Predict ``image [C, H, W]`` (raw values).

        Returns:
            ``(depth_m [H, W] positive down, classes [H, W] uint8, valid [H, W] bool)``; ``depth_m`` is ``None``
            for a segmentation-only network and ``classes`` is ``None`` for a depth-only network.
        """
        c, h, w = image.shape
        need = self.model.in_channels
        assert isinstance(need, int)  # every network of the package stores its band count
        if c != need:
            raise DataFormatError(f"{source}: expected {need} bands, got {c} (select bands with --bands)")
        if h < self.tile or w < self.tile:
            raise DataFormatError(
                f"{source}: raster is {h}x{w} pixels; the model needs at least {self.tile}x{self.tile} "
                "(its native training window)"
            )
        if not np.isfinite(image).all():
            raise DataFormatError(f"{source}: image holds NaN/inf values (no-data must be 0)")
        if not 0 <= self.overlap < self.tile:
            raise ValueError(f"overlap must lie in [0, {self.tile}), got {self.overlap}")
        device = next(self.model.parameters()).device
        n_depth, k = head_channels(self.model)
        x = torch.from_numpy(image.astype(np.float32))
        depth_acc = torch.zeros(h, w, dtype=torch.float64)
        prob_acc = torch.zeros(max(k, 1), h, w, dtype=torch.float64)
        wsum = torch.zeros(h, w, dtype=torch.float64)
        weight = blend_weights(self.tile, self.overlap).double()
        stride = self.tile - self.overlap
        coords = [(r, cc) for r in tile_starts(h, self.tile, stride) for cc in tile_starts(w, self.tile, stride)]
        t = self.tile
        for i in range(0, len(coords), self.batch_size):
            chunk = coords[i : i + self.batch_size]
            tiles = torch.stack([x[:, r : r + t, cc : cc + t] for r, cc in chunk]).to(device)
            inp = prepare_image(tiles, self.norm_param.to(device), self.channel_order)
            size = (self.input_size, self.input_size)
            if t > self.input_size:
                inp = F.interpolate(inp, size=size, mode="bilinear", antialias=True)
            elif t < self.input_size and self.upsample_mode == "nearest":
                inp = F.interpolate(inp, size=size, mode="nearest")
            elif t < self.input_size:
                inp = F.interpolate(inp, size=size, mode="bilinear", align_corners=False)
            bathy, logits = network_heads(self.model, inp)
            if bathy is None:
                bathy = torch.zeros(inp.shape[0], 1, *size, device=device)
            if logits is None:
                logits = torch.zeros(inp.shape[0], 1, *size, device=device)
            if self.undefined_index is not None and k:
                logits[:, self.undefined_index] = float("-inf")
            probs = logits.softmax(dim=1)
            if t != self.input_size:
                bathy = F.interpolate(bathy, size=(t, t), mode="bilinear", align_corners=False)
                probs = F.interpolate(probs, size=(t, t), mode="bilinear", align_corners=False)
            bathy, probs = bathy.double().cpu(), probs.double().cpu()
            for j, (r, cc) in enumerate(chunk):
                depth_acc[r : r + t, cc : cc + t] += bathy[j, 0] * weight
                prob_acc[:, r : r + t, cc : cc + t] += probs[j] * weight
                wsum[r : r + t, cc : cc + t] += weight
        depth = (depth_acc / wsum * self.depth_scale).float().numpy() if n_depth else None
        classes = (prob_acc / wsum).argmax(dim=0).numpy().astype(np.uint8) if k else None
        valid = (image != 0).mean(axis=0) >= 0.5
        return depth, classes, valid


def _colour_depth(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    d = depth[valid]
    lo, hi = (float(d.min()), float(d.max())) if d.size else (0.0, 1.0)
    t = np.clip((depth - lo) / max(hi - lo, 1e-6), 0, 1)
    # light cyan (shallow) -> dark blue (deep)
    stops = np.array([[224, 255, 255], [64, 164, 223], [8, 48, 107]], dtype=np.float32)
    seg = np.minimum((t * 2).astype(int), 1)
    frac = (t * 2 - seg)[..., None]
    rgb = stops[seg] * (1 - frac) + stops[seg + 1] * frac
    rgb[~valid] = 0
    return rgb.astype(np.uint8).transpose(2, 0, 1)


def write_outputs(
    out_dir: str | os.PathLike[str],
    stem: str,
    profile: dict[str, object],
    depth_m: np.ndarray | None,
    classes: np.ndarray | None,
    valid: np.ndarray,
    site: str | None = None,
) -> dict[str, Path]:
    """Write the depth GeoTIFF, the class GeoTIFF and a PNG preview, all atomically.

    ``{stem}_depth.tif`` holds negative metres (MagicBathyNet convention) with nodata -9999,
    ``{stem}_classes.tif`` uint8 class indices with nodata 255, ``{stem}_preview.png`` depth | classes.
    A ``None`` map (single-task network) is skipped, and the preview then shows the other map only.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base: dict[str, object] = {k: profile[k] for k in ("crs", "transform", "width", "height") if k in profile}
    base.update(driver="GTiff", count=1, compress="deflate")
    paths: dict[str, Path] = {}
    panels: list[np.ndarray] = []
    if depth_m is not None:
        paths["depth"] = out / f"{stem}_depth.tif"
        elev = np.where(valid, -depth_m, DEPTH_NODATA).astype(np.float32)
        with (
            atomic_path(paths["depth"]) as tmp,
            rasterio.open(tmp, "w", **base, dtype="float32", nodata=DEPTH_NODATA) as dst,
        ):
            dst.write(elev[None])
            dst.update_tags(units="m", convention="negative below the water surface")
        panels.append(_colour_depth(depth_m, valid))
    if classes is not None:
        paths["classes"] = out / f"{stem}_classes.tif"
        cls = np.where(valid, classes, CLASS_NODATA).astype(np.uint8)
        with (
            atomic_path(paths["classes"]) as tmp,
            rasterio.open(tmp, "w", **base, dtype="uint8", nodata=CLASS_NODATA) as dst,
        ):
            dst.write(cls[None])
            if site is not None:
                spec = site_spec(site)
                dst.update_tags(**{f"class_{i}": n for i, n in enumerate(spec.class_names)})
        if site is not None:
            lut = np.zeros((256, 3), np.uint8)
            lut[: site_spec(site).num_classes] = np.asarray(site_spec(site).palette, np.uint8)
        else:
            rng = np.random.default_rng(0)
            lut = rng.integers(0, 256, (256, 3), dtype=np.uint8)
        cls_rgb = lut[cls].transpose(2, 0, 1)
        cls_rgb[:, ~valid] = 0
        if panels:
            panels.append(np.full((3, valid.shape[0], 4), 255, np.uint8))
        panels.append(cls_rgb)
    if not panels:
        raise ValueError("write_outputs needs a depth map, a class map or both")
    paths["preview"] = out / f"{stem}_preview.png"
    preview = np.concatenate(panels, axis=2)
    png = {
        "driver": "PNG",
        "width": preview.shape[2],
        "height": preview.shape[1],
        "count": 3,
        "dtype": "uint8",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # the PNG preview carries no georeference
        with atomic_path(paths["preview"]) as tmp, rasterio.open(tmp, "w", **png) as dst:
            dst.write(preview)
    return paths
