r"""The ``.hyv`` container and the tile-by-tile codec.

File layout (all integers little-endian)::

    magic      8 bytes  b"HYVIC\x00\r\n"
    version    u16      FORMAT_VERSION
    hlen       u32      length of the JSON header
    header     hlen     zlib-compressed JSON: model id/architecture/config, shape, dtype, scale, tile, georef,
                        scale-index rounding of the Gaussian conditional (see ``rsim.hyvic.entropy``)
    hcrc       u32      CRC-32 of the header bytes
    ntiles     u32
    per tile:  u32 len(y) | u32 len(z) | u16 z_h | u16 z_w | u32 CRC-32(y + z) | y bytes | z bytes

Tiles are coded independently in row-major order: each tile is read from the source, padded (replicate) to a
multiple of the model's divisor, coded, and written; the latent of the whole image is never held. Decoding
likewise writes one tile at a time into the output GeoTIFF.
"""

from __future__ import annotations

import json
import math
import struct
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from compressai.models import CompressionModel
from rsim.core.errors import DataFormatError
from rsim.core.io import atomic_path
from rsim.hyvic.checkpoint import model_architecture, model_channels, model_config, model_divisor, model_id
from rsim.hyvic.data.formats import read_s2_folder
from rsim.hyvic.entropy import INDEX_ROUNDINGS, index_rounding

MAGIC = b"HYVIC\x00\r\n"
FORMAT_VERSION = 2  # 2: header field scale_index (nearest/up table index of the y scales)
_TILE = struct.Struct("<IIHHI")
GDAL_CACHE_MB = 64


class RasterSource(Protocol):
    """A multi-band raster read window by window."""

    name: str
    shape: tuple[int, int, int]
    dtype: np.dtype
    profile: dict[str, Any]
    band_names: list[str]

    def read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        """Return the C x height x width window at (row, col) in native dtype."""
        ...


class ArraySource:
    """A raster held in memory (e.g. a stacked Sentinel-2 band folder)."""

    def __init__(self, data: np.ndarray, profile: dict[str, Any], band_names: list[str], name: str) -> None:
        self.data, self.profile, self.band_names, self.name = data, profile, band_names, name
        self.shape = (int(data.shape[0]), int(data.shape[1]), int(data.shape[2]))
        self.dtype = data.dtype

    def read(self, row: int, col: int, height: int, width: int) -> np.ndarray:  # noqa: D102
        return self.data[:, row : row + height, col : col + width]


class GeoTiffSource:
    """A GDAL raster (GeoTIFF, ENVI, ...) read window by window with ``rsim.core.data.geotiff.read_geotiff``.

    Only the metadata is read on construction; :meth:`read` opens the file for each window, so at most one
    tile of pixels is in memory.
    """

    def __init__(self, path: str | Path) -> None:
        import rasterio

        self.path = Path(path)
        self.name = str(path)
        try:
            with rasterio.open(self.path) as ds:
                self.shape = (int(ds.count), int(ds.height), int(ds.width))
                self.dtype = np.dtype(ds.dtypes[0])
                self.profile = dict(ds.profile)
                self.band_names = [d or f"band{i + 1}" for i, d in enumerate(ds.descriptions)]
        except rasterio.errors.RasterioIOError as err:
            raise DataFormatError(f"{path}: not a readable raster ({err})") from err

    def read(self, row: int, col: int, height: int, width: int) -> np.ndarray:  # noqa: D102
        from rasterio.windows import Window
        from rsim.core.data.geotiff import read_geotiff

        if row < 0 or col < 0 or row + height > self.shape[1] or col + width > self.shape[2]:
            raise ValueError(f"{self.name}: window {(row, col, height, width)} outside the {self.shape} raster")
        return read_geotiff(self.path, window=Window(col, row, width, height))[0]


@contextmanager
def open_source(path: str | Path, *, grid: int = 10) -> Iterator[RasterSource]:
    """Open a raster for the codec.

    A multi-band file (GeoTIFF, ENVI or any GDAL format) is read window by window; a Sentinel-2 folder of
    single-band files is stacked in memory (see ``read_s2_folder``).
    """
    import rasterio

    path = Path(path)
    if path.is_dir():
        r = read_s2_folder(path, grid=grid)
        yield ArraySource(r.data, r.profile, r.band_names, str(path))
        return
    if not path.is_file():
        raise FileNotFoundError(f"input raster not found: {path}")
    # Each block is read once, so GDAL's block cache (default 5 % of RAM) only inflates memory: keep it small.
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        yield GeoTiffSource(path)


def default_scale(dtype: np.dtype) -> float:
    """Integer rasters are reflectance x 10000 (Sentinel-2 L1C/L2A, EnMAP); floats are already in [0, 1]."""
    return 10000.0 if np.issubdtype(dtype, np.integer) else 1.0


def tile_grid(height: int, width: int, tile: int) -> list[tuple[int, int, int, int]]:
    """Row-major (row, col, h, w) tiles covering the image; edge tiles are smaller."""
    return [
        (r, c, min(tile, height - r), min(tile, width - c))
        for r in range(0, height, tile)
        for c in range(0, width, tile)
    ]


def to_unit(raw: np.ndarray, scale: float, where: str) -> np.ndarray:
    """Native raster values -> float32 in [0, 1] (divide by ``scale``, clip); refuses NaN/inf."""
    if np.issubdtype(raw.dtype, np.floating) and not np.isfinite(raw).all():
        raise DataFormatError(f"{where}: contains NaN or infinite values; the codec needs finite pixels")
    return np.clip(raw.astype(np.float32) / np.float32(scale), 0.0, 1.0)


def _to_model_input(raw: np.ndarray, scale: float, divisor: int, where: str) -> torch.Tensor:
    x = torch.from_numpy(to_unit(raw, scale, where))[None]
    h, w = x.shape[-2:]
    ph, pw = (-h) % divisor, (-w) % divisor
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x


def from_unit(x: np.ndarray, dtype: np.dtype, scale: float) -> np.ndarray:
    """Map [0, 1] reconstructions back to the source dtype (rounded and clipped for integers)."""
    v = x.astype(np.float64) * scale
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.round(v), info.min, info.max).astype(dtype)
    return v.astype(dtype)


@dataclass
class CodingStats:
    """What one compress call produced.

    Attributes:
        path: Output file.
        num_bytes: File size in bytes (header included).
        payload_bytes: Bytes of the y and z strings only.
        shape: (C, H, W) of the coded image.
        raw_bytes: Size of the input at 32 bits per sample (the bpppc/CR convention).
        seconds: Wall time.
    """

    path: Path
    num_bytes: int
    payload_bytes: int
    shape: tuple[int, int, int]
    raw_bytes: int
    seconds: float

    @property
    def bpppc(self) -> float:
        """Bits per pixel per channel of the whole file."""
        c, h, w = self.shape
        return 8.0 * self.num_bytes / (c * h * w)

    @property
    def compression_ratio(self) -> float:
        """CR = 32 / bpppc (float32 reference)."""
        return 32.0 / self.bpppc


def _check_model_bands(model: CompressionModel, source: RasterSource) -> None:
    c = model_channels(model)
    if source.shape[0] != c:
        raise DataFormatError(
            f"{source.name}: has {source.shape[0]} bands but the model codes {c} bands "
            f"({model_architecture(model)} {model_config(model)})"
        )


def _crs_text(crs: Any) -> str | None:
    """``EPSG:n`` when that names the CRS exactly (about 600 bytes smaller than WKT), else WKT."""
    if crs is None:
        return None
    from rasterio.crs import CRS

    epsg = crs.to_epsg()
    if epsg is not None and CRS.from_epsg(epsg) == crs:
        return f"EPSG:{epsg}"
    return str(crs.to_wkt())


def _header(model: CompressionModel, source: RasterSource, tile: int, scale: float, scale_index: str) -> dict[str, Any]:
    crs = source.profile.get("crs")
    transform = source.profile.get("transform")
    return {
        "format": "hyvic",
        "model_id": model_id(model),
        "architecture": model_architecture(model),
        "model_config": model_config(model),
        "bands": source.shape[0],
        "height": source.shape[1],
        "width": source.shape[2],
        "dtype": str(source.dtype),
        "scale": scale,
        "tile": tile,
        "divisor": model_divisor(model),
        "scale_index": scale_index,
        "crs": _crs_text(crs),
        "transform": list(transform)[:6] if transform is not None else None,
        "band_names": list(source.band_names),
    }


def compress_source(
    model: CompressionModel,
    source: RasterSource,
    out_path: str | Path,
    *,
    tile: int = 256,
    scale: float | None = None,
    scale_index: str = "nearest",
) -> CodingStats:
    """Compress a raster source tile by tile into a ``.hyv`` file (atomic write).

    Args:
        model: A model from :func:`rsim.hyvic.checkpoint.load_model` (eval mode, CDFs updated, on CPU).
        source: The raster to code.
        out_path: Destination ``.hyv`` file.
        tile: Tile size in pixels (a multiple of the model's divisor).
        scale: Divisor that maps the source values to [0, 1] (default: :func:`default_scale`).
        scale_index: How y scales map to the 64-entry CDF table: ``nearest`` (log scale) or ``up``
            (CompressAI's rounding, a few % to 15 % larger files; see :mod:`rsim.hyvic.entropy`).
    """
    t0 = time.perf_counter()
    _check_model_bands(model, source)
    divisor = model_divisor(model)
    if tile <= 0 or tile % divisor:
        raise ValueError(f"tile must be a positive multiple of {divisor} for this model, got {tile}")
    scale = float(scale if scale is not None else default_scale(source.dtype))
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if scale_index not in INDEX_ROUNDINGS:
        raise ValueError(f"scale_index must be one of {INDEX_ROUNDINGS}, got {scale_index!r}")
    nodata = source.profile.get("nodata")
    header = zlib.compress(json.dumps(_header(model, source, tile, scale, scale_index)).encode(), 9)
    tiles = tile_grid(source.shape[1], source.shape[2], tile)
    payload = 0
    model.eval()
    with atomic_path(out_path) as tmp, open(tmp, "wb") as fh:
        fh.write(MAGIC + struct.pack("<HI", FORMAT_VERSION, len(header)) + header)
        fh.write(struct.pack("<II", zlib.crc32(header), len(tiles)))
        for r, c, h, w in tiles:
            raw = source.read(r, c, h, w)
            if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
                if (raw == nodata).any():
                    raise DataFormatError(
                        f"{source.name}: nodata value {nodata} present in tile at row {r}, col {c}; "
                        "the codec needs valid pixels everywhere (fill nodata first)"
                    )
            x = _to_model_input(raw, scale, divisor, f"{source.name} tile at row {r}, col {c}")
            with torch.inference_mode(), index_rounding(model, scale_index):
                out = model.compress(x)
            y, z = out["strings"][0][0], out["strings"][1][0]
            zh, zw = out["shape"]
            fh.write(_TILE.pack(len(y), len(z), zh, zw, zlib.crc32(y + z)) + y + z)
            payload += len(y) + len(z)
    out_path = Path(out_path)
    cc, hh, ww = source.shape
    return CodingStats(
        out_path, out_path.stat().st_size, payload, source.shape, 4 * cc * hh * ww, time.perf_counter() - t0
    )


def compress_file(
    model: CompressionModel,
    in_path: str | Path,
    out_path: str | Path,
    *,
    tile: int = 256,
    scale: float | None = None,
    grid: int = 10,
    scale_index: str = "nearest",
) -> CodingStats:
    """Compress a GeoTIFF (or Sentinel-2 band folder) into a ``.hyv`` file (see :func:`compress_source`)."""
    with open_source(in_path, grid=grid) as src:
        return compress_source(model, src, out_path, tile=tile, scale=scale, scale_index=scale_index)


_HEADER_KEYS = (
    "model_id",
    "architecture",
    "model_config",
    "bands",
    "height",
    "width",
    "dtype",
    "scale",
    "tile",
    "scale_index",
    "crs",
    "transform",
    "band_names",
)


def _read_exact(fh: BinaryIO, n: int, path: Path, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise DataFormatError(f"{path}: truncated while reading {what} (expected {n} bytes, got {len(data)})")
    return data


def _read_header(fh: BinaryIO, path: Path) -> tuple[dict[str, Any], int]:
    magic = fh.read(len(MAGIC))
    if magic != MAGIC:
        raise DataFormatError(f"{path}: not a .hyv file (bad magic number {magic!r}, expected {MAGIC!r})")
    version, hlen = struct.unpack("<HI", _read_exact(fh, 6, path, "version and header length"))
    if version != FORMAT_VERSION:
        raise DataFormatError(f"{path}: unsupported .hyv version {version} (this reader handles {FORMAT_VERSION})")
    raw = _read_exact(fh, hlen, path, "header")
    crc, ntiles = struct.unpack("<II", _read_exact(fh, 8, path, "header checksum"))
    if zlib.crc32(raw) != crc:
        raise DataFormatError(f"{path}: header is corrupted (CRC-32 mismatch)")
    try:
        header = json.loads(zlib.decompress(raw))
    except (zlib.error, ValueError) as err:
        raise DataFormatError(f"{path}: header is not valid compressed JSON ({err})") from err
    missing = [k for k in _HEADER_KEYS if k not in header]
    if missing:
        raise DataFormatError(f"{path}: header lacks {missing}")
    if header["scale_index"] not in INDEX_ROUNDINGS:
        raise DataFormatError(f"{path}: header scale_index {header['scale_index']!r} not in {INDEX_ROUNDINGS}")
    expected = len(tile_grid(header["height"], header["width"], header["tile"]))
    if ntiles != expected:
        raise DataFormatError(f"{path}: header says {ntiles} tiles, the shape implies {expected}")
    return header, ntiles


def read_header(path: str | Path) -> dict[str, Any]:
    """Read and validate the header of a ``.hyv`` file."""
    path = Path(path)
    with open(path, "rb") as fh:
        return _read_header(fh, path)[0]


def _check_model_matches(model: CompressionModel, header: dict[str, Any], path: Path) -> None:
    mid = model_id(model)
    if header["model_id"] != mid:
        raise DataFormatError(
            f"{path}: was coded with model {header['model_id']} ({header['architecture']} "
            f"{header['model_config']}), but the given model is {mid} ({model_architecture(model)} "
            f"{model_config(model)}); decode with the same model file"
        )


def iter_decoded_tiles(
    model: CompressionModel, path: str | Path
) -> Iterator[tuple[dict[str, Any], tuple[int, int, int, int], np.ndarray]]:
    """Decode a ``.hyv`` file tile by tile, yielding ``(header, (row, col, h, w), x_hat in [0, 1])``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f".hyv file not found: {path}")
    model.eval()
    with open(path, "rb") as fh:
        header, _ = _read_header(fh, path)
        _check_model_matches(model, header, path)
        for i, (r, c, h, w) in enumerate(tile_grid(header["height"], header["width"], header["tile"])):
            ny, nz, zh, zw, crc = _TILE.unpack(_read_exact(fh, _TILE.size, path, f"tile {i} record"))
            y = _read_exact(fh, ny, path, f"tile {i} y string")
            z = _read_exact(fh, nz, path, f"tile {i} z string")
            if zlib.crc32(y + z) != crc:
                raise DataFormatError(f"{path}: tile {i} (row {r}, col {c}) is corrupted (CRC-32 mismatch)")
            with torch.inference_mode(), index_rounding(model, header["scale_index"]):
                x_hat = model.decompress([[y], [z]], (zh, zw))["x_hat"]
            yield header, (r, c, h, w), x_hat[0, :, :h, :w].clamp(0, 1).numpy()
        if fh.read(1):
            raise DataFormatError(f"{path}: unexpected trailing bytes after the last tile")


def decode_to_array(model: CompressionModel, path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode a whole ``.hyv`` file to a float32 C x H x W array in [0, 1] (for tests and small images)."""
    out: np.ndarray | None = None
    header: dict[str, Any] = {}
    for header, (r, c, h, w), tile in iter_decoded_tiles(model, path):
        if out is None:
            out = np.zeros((header["bands"], header["height"], header["width"]), np.float32)
        out[:, r : r + h, c : c + w] = tile
    if out is None:
        raise DataFormatError(f"{path}: contains no tiles")
    return out, header


def decompress_file(model: CompressionModel, in_path: str | Path, out_path: str | Path) -> dict[str, Any]:
    """Decode a ``.hyv`` file into a GeoTIFF with the source's georeferencing, band count and dtype."""
    import rasterio
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.windows import Window

    t0 = time.perf_counter()
    header = read_header(in_path)
    _check_model_matches(model, header, Path(in_path))
    dtype = np.dtype(header["dtype"])
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "count": header["bands"],
        "height": header["height"],
        "width": header["width"],
        "dtype": str(dtype),
        "crs": CRS.from_user_input(header["crs"]) if header["crs"] else None,
        "transform": Affine(*header["transform"]) if header["transform"] else Affine.identity(),
    }
    with atomic_path(out_path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            for i, name in enumerate(header["band_names"]):
                dst.set_band_description(i + 1, name)
            for _, (r, c, h, w), tile in iter_decoded_tiles(model, in_path):
                dst.write(from_unit(tile, dtype, header["scale"]), window=Window(c, r, w, h))
    return {**header, "seconds": time.perf_counter() - t0}


def iter_quantised_forward(
    model: CompressionModel, source: RasterSource, *, tile: int = 256, scale: float | None = None
) -> Iterator[tuple[tuple[int, int, int, int], np.ndarray, float]]:
    """Eval-mode forward pass (rounded latents) tile by tile, tiled and padded as the codec does.

    Yields:
        ``((row, col, h, w), x_hat in [0, 1] (C x h x w), likelihood bits of the tile's y and z)``.
    """
    divisor = model_divisor(model)
    scale = float(scale if scale is not None else default_scale(source.dtype))
    _, h_all, w_all = source.shape
    model.eval()
    for r, col, h, w in tile_grid(h_all, w_all, tile):
        x = _to_model_input(source.read(r, col, h, w), scale, divisor, source.name)
        with torch.inference_mode():
            res = model(x)
        bits = float(sum(-torch.log2(lik).sum() for lik in res["likelihoods"].values()))
        yield (r, col, h, w), res["x_hat"][0, :, :h, :w].clamp(0, 1).numpy(), bits


def likelihood_bits(
    model: CompressionModel, source: RasterSource, *, tile: int = 256, scale: float | None = None
) -> float:
    """Likelihood-estimated bits (y and z) of the whole source, one tile in memory at a time."""
    return sum(bits for _, _, bits in iter_quantised_forward(model, source, tile=tile, scale=scale))


def quantised_forward(
    model: CompressionModel, source: RasterSource, *, tile: int = 256, scale: float | None = None
) -> tuple[np.ndarray, float]:
    """Whole-image :func:`iter_quantised_forward` (for tests and small images).

    Returns:
        The [0, 1] reconstruction (C x H x W) and the likelihood-estimated bits of all tiles (y and z).
    """
    out = np.zeros(source.shape, np.float32)
    total = 0.0
    for (r, col, h, w), x_hat, bits in iter_quantised_forward(model, source, tile=tile, scale=scale):
        out[:, r : r + h, col : col + w] = x_hat
        total += bits
    return out, total


__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "ArraySource",
    "CodingStats",
    "GeoTiffSource",
    "RasterSource",
    "compress_file",
    "compress_source",
    "decode_to_array",
    "decompress_file",
    "default_scale",
    "from_unit",
    "iter_decoded_tiles",
    "iter_quantised_forward",
    "likelihood_bits",
    "open_source",
    "quantised_forward",
    "read_header",
    "tile_grid",
    "to_unit",
]
