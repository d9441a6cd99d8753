"""Reader of the RML_indoor dataset layout (environment rasters, Tx JSON, 32×32 path-loss PNGs, perturbed copies).

Layout (file names from the original code; folder names are an [assumption], see the README)::

    ROOT/rasterization_parameters.json        heights, raster size/extent, classes, property ranges
    ROOT/rm_processing_parameters.json        path-loss range (−71…−12 dB), map size, frequency
    ROOT/split_rectangular_L-shaped_val=0.1_test=0.1.json   {"train"|"val"|"test": [[env, tx], ...]}
    ROOT/environments/project{env}_height{h}_classes.png     class index per pixel (0 free … 4 glass)
    ROOT/environments/project{env}_height{h}_{conductivity|permittivity|thickness}.png   uint8-normalised
    ROOT/environments/project{env}_tx.json    {tx_id: [x, y, z]} in metres
    ROOT/radio_maps/project{env}-{tx}.png     uint8 grey 0..255 ↔ −71..−12 dB, 0 = invalid
    ROOT/perturbed/{copies}/project{env}_copy{k}_height{h}_*.png and project{env}_copy{k}_tx.json
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rsim.core.errors import DataFormatError, MissingKeyError

__all__ = [
    "CLASS_NAMES",
    "PL_MAX",
    "PL_RANGE",
    "PL_TRNC",
    "PROPERTY_NAMES",
    "RadioMapLayout",
    "db_to_gray",
    "gray_to_db",
    "read_png",
    "split_file_name",
]

PL_TRNC = -71.0  #: truncation floor of the path gain in dB (grey 0)
PL_MAX = -12.0  #: maximum path gain in dB (grey 255)
PL_RANGE = PL_MAX - PL_TRNC  #: 59 dB: RMSE in dB = RMSE on the [0, 1] grey scale × 59
CLASS_NAMES = ("free", "concrete/drywall", "wood", "metal", "glass")
PROPERTY_NAMES = ("conductivity", "permittivity", "thickness")
ENCODINGS = ("binary", "classes", "properties", "none")


def split_file_name(val: float = 0.1, test: float = 0.1) -> str:
    """Name of the split JSON as the original writes it."""
    return f"split_rectangular_L-shaped_val={val}_test={test}.json"


def db_to_gray(pl_db: NDArray[Any]) -> NDArray[np.uint8]:
    """Path gain in dB → uint8 grey (clipped to −71…−12 dB; 0 is the invalid/truncation value)."""
    g = np.round((np.clip(pl_db, PL_TRNC, PL_MAX) - PL_TRNC) / PL_RANGE * 255.0)
    return g.astype(np.uint8)


def gray_to_db(gray: NDArray[Any]) -> NDArray[np.float64]:
    """uint8 grey (or [0, 1] float grey when the dtype is floating) → path gain in dB."""
    g = np.asarray(gray, dtype=np.float64)
    if np.issubdtype(np.asarray(gray).dtype, np.integer):
        g = g / 255.0
    return PL_TRNC + g * PL_RANGE


def read_png(path: Path, *, shape: tuple[int, int] | None = None) -> NDArray[np.uint8]:
    """Read an 8-bit single-channel PNG; check the size when ``shape`` is given.

    Raises:
        FileNotFoundError: The file is missing.
        DataFormatError: Not a readable PNG, not 8-bit grey, or the wrong size.
    """
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise FileNotFoundError(f"{path}: PNG not found")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "P"):
                raise DataFormatError(f"{path}: expected an 8-bit grey PNG (mode L), got mode {im.mode}")
            arr = np.array(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataFormatError(f"{path}: corrupt or truncated PNG ({exc})") from exc
    if shape is not None and arr.shape != tuple(shape):
        raise DataFormatError(f"{path}: expected size {tuple(shape)}, got {arr.shape}")
    return arr


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path}: invalid JSON in {what} ({exc})") from exc


def _require(d: dict[str, Any], key: str, path: Path) -> Any:
    if key not in d:
        raise MissingKeyError(f"{path}: missing key {key!r}")
    return d[key]


@dataclass
class RadioMapLayout:
    """One dataset root in the RML_indoor layout.

    Args:
        root: Dataset folder.
        copies_dir: Sub-folder of ``perturbed/`` holding the copies used for SNDA / noisy evaluation.
        split_name: Split JSON file name.
    """

    root: Path
    copies_dir: str = "sev0.5"
    split_name: str = field(default_factory=split_file_name)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: dataset folder not found")
        rp = self.root / "rasterization_parameters.json"
        self.raster_params: dict[str, Any] = _read_json(rp, "rasterization parameters")
        self.heights: list[str] = [str(h) for h in _require(self.raster_params, "height_names", rp)]
        self.raster_size = int(_require(self.raster_params, "raster_size", rp))
        self.extent_m = float(_require(self.raster_params, "extent_m", rp))
        self.n_classes = int(self.raster_params.get("n_classes", len(CLASS_NAMES)))
        mp = self.root / "rm_processing_parameters.json"
        self.rm_params: dict[str, Any] = _read_json(mp, "radio-map processing parameters")
        self.map_size = int(_require(self.rm_params, "map_size", mp))
        for key, expected in (("pl_trnc", PL_TRNC), ("pl_max", PL_MAX)):
            if float(_require(self.rm_params, key, mp)) != expected:
                raise DataFormatError(f"{mp}: {key}={self.rm_params[key]}, this reader expects {expected}")

    # --- paths
    def env_prefix(self, env: int, copy: int | None = None) -> Path:
        """File-name prefix of an environment (``copy=None``) or of its perturbed copy ``k``."""
        if copy is None:
            return self.root / "environments" / f"project{env}"
        return self.root / "perturbed" / self.copies_dir / f"project{env}_copy{copy}"

    def target_path(self, env: int, tx: int) -> Path:
        """Path of the radio map of ``(env, tx)``."""
        return self.root / "radio_maps" / f"project{env}-{tx}.png"

    # --- readers
    def read_split(self) -> dict[str, list[tuple[int, int]]]:
        """Return ``{"train"|"val"|"test": [(env, tx), ...]}``."""
        path = self.root / self.split_name
        raw = _read_json(path, "split file")
        out: dict[str, list[tuple[int, int]]] = {}
        for name in ("train", "val", "test"):
            pairs = _require(raw, name, path)
            try:
                out[name] = [(int(e), int(t)) for e, t in pairs]
            except (TypeError, ValueError) as exc:
                raise DataFormatError(f"{path}: split {name!r} must be a list of [env, tx] pairs ({exc})") from exc
        return out

    def read_tx(self, env: int, copy: int | None = None) -> dict[int, tuple[float, float, float]]:
        """Tx positions ``{tx_id: (x, y, z)}`` in metres."""
        path = Path(f"{self.env_prefix(env, copy)}_tx.json")
        raw = _read_json(path, "Tx JSON")
        out = {}
        for k, v in raw.items():
            arr = np.asarray(v, dtype=np.float64)
            if arr.shape != (3,) or not np.isfinite(arr).all():
                raise DataFormatError(f"{path}: Tx {k!r} must be [x, y, z] finite metres, got {v!r}")
            out[int(k)] = (float(arr[0]), float(arr[1]), float(arr[2]))
        return out

    def read_environment(self, env: int, encoding: str = "classes", copy: int | None = None) -> NDArray[np.uint8]:
        """Environment rasters as uint8 ``[C, S, S]``.

        ``binary``/``classes``: one channel per height holding the class index (binary = index > 0 is applied on the
        device); ``properties``: 3 channels per height (conductivity, permittivity, thickness); ``none``: 0 channels.
        """
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
        s = (self.raster_size, self.raster_size)
        prefix = self.env_prefix(env, copy)
        if encoding == "none":
            return np.zeros((0, *s), dtype=np.uint8)
        names = ("classes",) if encoding in ("binary", "classes") else PROPERTY_NAMES
        chans = [read_png(Path(f"{prefix}_height{h}_{n}.png"), shape=s) for h in self.heights for n in names]
        arr = np.stack(chans)
        if encoding != "properties" and int(arr.max(initial=0)) >= self.n_classes:
            raise DataFormatError(f"{prefix}_height*_classes.png: class index {int(arr.max())} >= {self.n_classes}")
        return arr

    def read_target(self, env: int, tx: int) -> NDArray[np.uint8]:
        """Path-loss map ``[map_size, map_size]`` uint8 (0 = invalid)."""
        return read_png(self.target_path(env, tx), shape=(self.map_size, self.map_size))

    def count_copies(self, env: int) -> int:
        """Number of perturbed copies of ``env`` in ``copies_dir`` (consecutive ``copy0…``)."""
        k = 0
        while Path(f"{self.env_prefix(env, k)}_tx.json").is_file():
            k += 1
        return k

    def num_env_channels(self, encoding: str) -> int:
        """Channels :meth:`read_environment` returns for ``encoding``."""
        return {"none": 0, "binary": 1, "classes": 1, "properties": 3}[encoding] * len(self.heights)
