"""MagicBathyNet reader (official folder layout), palette decoding, splits and normalisation parameters.

Layout (one folder per site)::

    root/{agia_napa,puck_lagoon}/
        img/{aerial,s2,spot6}/img_ID.tif      3+ band image (0 = no-data)
        depth/{aerial,s2,spot6}/depth_ID.tif  1 band float, negative metres, 0 = no label
        gts/{aerial,s2,spot6}/gts_ID.tif      3 band uint8 RGB palette labels (annotated patches only)
        {modality}_split_bathymetry.txt  {modality}_split_pixel_class.txt
        norm_param_{modality}_{an,pl}.txt (or .npy)  2 x C: row 0 min, row 1 max
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
from rsim.core.errors import DataFormatError

__all__ = [
    "MODALITIES",
    "SITES",
    "MagicBathyNetReader",
    "SiteSpec",
    "decode_palette",
    "encode_palette",
    "read_norm_param",
    "read_split",
]

Modality = Literal["aerial", "s2", "spot6"]
#: Native patch side in pixels per modality (180 m x 180 m patches).
MODALITIES: dict[str, int] = {"aerial": 720, "spot6": 30, "s2": 18}


@dataclass(frozen=True)
class SiteSpec:
    """Per-site constants of MagicBathyNet.

    Attributes:
        code: Short name used in the ``norm_param`` file names.
        depth_norm: Depth normalisation constant (negative metres); targets are ``depth / depth_norm``.
        palette: RGB colour of each class index (the last one is "undefined", black).
        class_names: Class names, same order.
        undefined_index: Index of the "undefined" class (ignored by the loss and the metrics).
        pixel_class_test_ids: Hard-coded pixel-classification test IDs of the original notebooks (or empty).
        crs: CRS used by the fixture writer.
    """

    code: str
    depth_norm: float
    palette: tuple[tuple[int, int, int], ...]
    class_names: tuple[str, ...]
    undefined_index: int
    pixel_class_test_ids: tuple[str, ...]
    crs: str

    @property
    def num_classes(self) -> int:
        """Number of classes including "undefined"."""
        return len(self.palette)

    @property
    def depth_scale(self) -> float:
        """Metres per normalised depth unit (``-depth_norm``)."""
        return -self.depth_norm


SITES: dict[str, SiteSpec] = {
    "agia_napa": SiteSpec(
        code="an",
        depth_norm=-30.443,
        palette=((0, 128, 0), (0, 0, 255), (255, 0, 0), (255, 128, 0), (0, 0, 0)),
        class_names=("seagrass", "rock", "macroalgae", "sand", "undefined"),
        undefined_index=4,
        pixel_class_test_ids=("411", "387", "410", "398", "370", "369", "397"),
        crs="EPSG:32636",
    ),
    "puck_lagoon": SiteSpec(
        code="pl",
        depth_norm=-11.0,
        palette=((255, 128, 0), (0, 128, 0), (0, 0, 0)),
        class_names=("sand", "eelgrass_pondweed", "undefined"),
        undefined_index=2,
        pixel_class_test_ids=(),
        crs="EPSG:25834",
    ),
}


def site_spec(site: str) -> SiteSpec:
    """Return the constants of ``site`` (``agia_napa`` or ``puck_lagoon``)."""
    if site not in SITES:
        raise ValueError(f"unknown MagicBathyNet site {site!r}; expected one of {sorted(SITES)}")
    return SITES[site]


def decode_palette(rgb: np.ndarray, site: str, source: str = "label") -> np.ndarray:
    """Map an RGB label image ``[3, H, W]`` to class indices ``[H, W]`` (int64) by exact colour match.

    Colours not in the site's palette become the "undefined" class.
    """
    spec = site_spec(site)
    if rgb.ndim != 3 or rgb.shape[0] < 3:
        raise DataFormatError(f"{source}: expected an RGB label image [3, H, W], got shape {rgb.shape}")
    code = (rgb[0].astype(np.int64) << 16) | (rgb[1].astype(np.int64) << 8) | rgb[2].astype(np.int64)
    out = np.full(code.shape, spec.undefined_index, dtype=np.int64)
    for idx, (r, g, b) in enumerate(spec.palette):
        out[code == ((r << 16) | (g << 8) | b)] = idx
    return out


def encode_palette(labels: np.ndarray, site: str) -> np.ndarray:
    """Map class indices ``[H, W]`` to the site's RGB palette ``[3, H, W]`` uint8."""
    spec = site_spec(site)
    lut = np.asarray(spec.palette, dtype=np.uint8)
    if labels.min() < 0 or labels.max() >= len(lut):
        raise ValueError(f"labels must lie in 0..{len(lut) - 1} for {site}, got {labels.min()}..{labels.max()}")
    return np.ascontiguousarray(lut[labels].transpose(2, 0, 1))


def read_norm_param(site_dir: str | os.PathLike[str], modality: str, site: str) -> np.ndarray:
    """Read ``norm_param_{modality}_{an|pl}.txt`` (or ``.npy``): ``[2, C]`` float32, row 0 min, row 1 max."""
    base = Path(site_dir) / f"norm_param_{modality}_{site_spec(site).code}"
    for path in (base.with_suffix(".txt"), base.with_suffix(".npy")):
        if path.is_file():
            try:
                arr = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, ndmin=2)
            except Exception as exc:
                raise DataFormatError(f"{path}: cannot parse normalisation parameters: {exc}") from exc
            arr = np.asarray(arr, dtype=np.float32)
            if arr.ndim == 1 and arr.size % 2 == 0:
                arr = arr.reshape(2, -1)
            if arr.ndim != 2 or arr.shape[0] != 2 or not np.isfinite(arr).all():
                raise DataFormatError(f"{path}: expected a finite 2 x C array (min row, max row), got {arr.shape}")
            if np.any(arr[1] <= arr[0]):
                raise DataFormatError(f"{path}: max row must exceed min row, got {arr.tolist()}")
            return arr
    raise FileNotFoundError(f"{base}.txt (or .npy): normalisation parameters not found")


_ID = re.compile(r"(?:img_|depth_|gts_)?(\d+)(?:\.tif)?")


def read_split(path: str | os.PathLike[str]) -> tuple[list[str], list[str] | None]:
    """Parse a split file.

    Accepted forms: IDs separated by whitespace/commas/quotes (optionally as ``img_ID.tif``), optionally in
    sections introduced by a line starting with ``train`` or ``test``.

    Returns:
        ``(train_ids, test_ids)`` when sections exist, else ``(all_ids, None)``.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: split file not found")
    sections: dict[str, list[str]] = {}
    current = "all"
    for line in p.read_text().splitlines():
        head = line.strip().lower()
        if head.startswith(("train", "test", "val")):
            current = "test" if head.startswith(("test", "val")) else "train"
            line = line.split(":", 1)[1] if ":" in line else line.split("=", 1)[1] if "=" in line else ""
        ids = [m.group(1) for m in _ID.finditer(line)]
        sections.setdefault(current, []).extend(ids)
    if "train" in sections or "test" in sections:
        return sections.get("train", []) + sections.get("all", []), sections.get("test", [])
    ids = sections.get("all", [])
    if not ids:
        raise DataFormatError(f"{p}: no patch IDs found")
    return ids, None


class MagicBathyNetReader:
    """Read patches of one site and modality from the official layout.

    Args:
        root: Dataset root (holding ``agia_napa/`` and/or ``puck_lagoon/``).
        site: ``agia_napa`` or ``puck_lagoon``.
        modality: ``aerial``, ``s2`` or ``spot6``.
        bands: Number of image bands used (the first ``bands`` of each file).
    """

    def __init__(self, root: str | os.PathLike[str], site: str, modality: str, bands: int = 3) -> None:
        self.spec = site_spec(site)
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; expected one of {sorted(MODALITIES)}")
        self.root = Path(root)
        self.site = site
        self.modality = modality
        self.bands = bands
        self.site_dir = self.root / site
        if not self.site_dir.is_dir():
            raise FileNotFoundError(f"{self.site_dir}: site folder not found under the MagicBathyNet root")

    def path(self, kind: Literal["img", "depth", "gts"], patch_id: str) -> Path:
        """Path of ``{kind}_{id}.tif``."""
        return self.site_dir / kind / self.modality / f"{kind}_{patch_id}.tif"

    def available_ids(self, kind: Literal["img", "depth", "gts"] = "img") -> list[str]:
        """IDs that have a file of ``kind`` (sorted numerically)."""
        folder = self.site_dir / kind / self.modality
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: folder not found")
        ids = [m.group(1) for p in folder.glob(f"{kind}_*.tif") if (m := re.fullmatch(rf"{kind}_(\d+)", p.stem))]
        return sorted(ids, key=int)

    def norm_param(self) -> np.ndarray:
        """``[2, bands]`` min/max normalisation parameters."""
        arr = read_norm_param(self.site_dir, self.modality, self.site)
        if arr.shape[1] < self.bands:
            raise DataFormatError(
                f"norm_param_{self.modality}_{self.spec.code}: has {arr.shape[1]} channels, need {self.bands}"
            )
        return arr[:, : self.bands]

    def split(self, source: Literal["bathymetry", "pixel_class"]) -> tuple[list[str], list[str]]:
        """Train and test IDs from ``{modality}_split_{source}.txt``.

        A file without sections is split as in the original notebooks: Agia Napa pixel classification uses the
        hard-coded test IDs; otherwise ``train_test_split(ids, test_size=0.2, random_state=1)``.
        """
        path = self.site_dir / f"{self.modality}_split_{source}.txt"
        ids, test = read_split(path)
        if test is not None:
            return ids, test
        if source == "pixel_class" and self.spec.pixel_class_test_ids:
            fixed = [i for i in ids if i in self.spec.pixel_class_test_ids]
            if fixed:
                return [i for i in ids if i not in fixed], fixed
            warnings.warn(
                f"{path}: none of the hard-coded test IDs {self.spec.pixel_class_test_ids} is listed; "
                "falling back to an 80/20 split (random_state=1)",
                stacklevel=2,
            )
        from sklearn.model_selection import train_test_split

        train, test_ids = train_test_split(ids, test_size=0.2, random_state=1)
        return list(train), list(test_ids)

    def read_image(self, patch_id: str) -> tuple[np.ndarray, dict[str, object]]:
        """Image ``[bands, H, W]`` float32 (raw values) and its rasterio profile."""
        path = self.path("img", patch_id)
        arr, profile = _read(path)
        if arr.shape[0] < self.bands:
            raise DataFormatError(f"{path}: expected at least {self.bands} bands, got {arr.shape[0]}")
        img = arr[: self.bands].astype(np.float32)
        if not np.isfinite(img).all():
            raise DataFormatError(f"{path}: image holds NaN/inf values (no-data must be 0)")
        return img, profile

    def read_depth(self, patch_id: str) -> np.ndarray:
        """Depth ``[H, W]`` float32 in metres (negative below the surface; 0 and non-finite = no label)."""
        path = self.path("depth", patch_id)
        arr, _ = _read(path)
        if arr.shape[0] != 1:
            raise DataFormatError(f"{path}: expected a single-band depth raster, got {arr.shape[0]} bands")
        depth = arr[0].astype(np.float32)
        return np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)

    def read_labels(self, patch_id: str) -> np.ndarray:
        """Class indices ``[H, W]`` int64 decoded from the RGB palette."""
        path = self.path("gts", patch_id)
        arr, _ = _read(path)
        if arr.shape[0] < 3 or arr.dtype != np.uint8:
            raise DataFormatError(
                f"{path}: expected a 3-band uint8 RGB label raster, got {arr.shape[0]} bands of {arr.dtype}"
            )
        return decode_palette(arr[:3], self.site, str(path))


def _read(path: Path) -> tuple[np.ndarray, dict[str, object]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        with rasterio.open(path) as src:
            return src.read(), dict(src.profile)
    except rasterio.errors.RasterioError as exc:
        raise DataFormatError(f"{path}: cannot read as a GeoTIFF: {exc}") from exc
