"""Random-access patch store in rico-hdl's format: LMDB, key = patch name, value = safetensors dict of bands.

Stores written by ``rsim encode bigearthnet`` and by rico-hdl are interchangeable: one safetensors blob per
patch with one array per band name (``B01``…``B12``, ``B8A``, ``VV``, ``VH``) at native size and dtype, and
reference maps under ``<patch>_reference_map`` with the tensor name ``Data``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rsim.core.errors import DataFormatError, MissingKeyError

REFERENCE_MAP_SUFFIX = "_reference_map"
# LMDB allows one environment per file and process: stores opened twice share it.
_ENVS: dict[tuple[str, int], Any] = {}


def _close_inherited_envs() -> None:
    """In a forked child (DataLoader worker), close the parent's environments.

    py-lmdb refuses to open an environment its process already holds, and a forked child inherits that
    registry; stores are opened read-only without locks, so closing the inherited handles is safe.
    """
    for key in [k for k in _ENVS if k[1] != os.getpid()]:
        with contextlib.suppress(Exception):  # a handle the child cannot close is simply dropped
            _ENVS.pop(key).close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_envs)
REFERENCE_MAP_TENSOR = "Data"


def encode_value(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Serialise band arrays to one safetensors blob (C-contiguous, dtypes kept)."""
    from safetensors.numpy import save

    return save({name: np.ascontiguousarray(a) for name, a in arrays.items()})


_NUMPY_DTYPES = {
    "BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "U16": np.uint16, "I16": np.int16, "F16": np.float16,
    "U32": np.uint32, "I32": np.int32, "F32": np.float32, "U64": np.uint64, "I64": np.int64, "F64": np.float64,
}  # fmt: skip


def decode_value(
    blob: bytes | memoryview, *, key: str, store: str | os.PathLike[str], bands: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Deserialise (the ``bands`` of) a safetensors blob into owned arrays, naming the store and key on failure.

    The header is parsed here and each tensor is copied once out of ``blob``, which may be a buffer into the
    LMDB map that is only valid inside its transaction. The layout is the safetensors format: an 8-byte
    little-endian header length, a JSON header ``{name: {dtype, shape, data_offsets}}``, then the data.
    """
    import json

    def bad(reason: str) -> DataFormatError:
        return DataFormatError(f"{store}: value of key {key!r} is not a valid safetensors blob ({reason})")

    view = memoryview(blob)
    if len(view) < 8:
        raise bad(f"{len(view)} bytes, shorter than the 8-byte header length")
    header_len = int.from_bytes(view[:8], "little")
    if header_len > len(view) - 8:
        raise bad(f"header length {header_len} exceeds the {len(view)}-byte value (truncated?)")
    try:
        header = json.loads(bytes(view[8 : 8 + header_len]))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"unreadable JSON header: {exc}") from exc
    names = [n for n in header if n != "__metadata__"] if bands is None else list(bands)
    data_start, out = 8 + header_len, {}
    for name in names:
        if name not in header:
            continue  # the caller reports absent bands with the list of present ones
        info = header[name]
        dtype = _NUMPY_DTYPES.get(info.get("dtype"))
        start, end = info.get("data_offsets", (0, -1))
        shape = tuple(info.get("shape", ()))
        if dtype is None:
            raise bad(f"tensor {name!r} has unsupported dtype {info.get('dtype')!r}")
        count = int(np.prod(shape)) if shape else 1
        if end - start != count * np.dtype(dtype).itemsize or data_start + end > len(view) or start < 0:
            raise bad(f"tensor {name!r} offsets {start}..{end} do not fit its shape {shape} and the value")
        out[name] = np.frombuffer(view, dtype=dtype, count=count, offset=data_start + start).reshape(shape).copy()
    return out


class LmdbPatchStore:
    """Read-only access to an LMDB patch store, safe to use from DataLoader workers.

    The environment is opened lazily and re-opened in each process (LMDB handles must not cross ``fork``).

    Args:
        path: The store folder (holding ``data.mdb``).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not (self.path / "data.mdb").is_file():
            raise FileNotFoundError(f"LMDB store {self.path} not found: expected a folder holding data.mdb")
        self._env: Any = None
        self._pid: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_env": None, "_pid": None}

    def _open(self) -> Any:
        import lmdb

        if self._env is None or self._pid != os.getpid():
            key = (str(self.path.resolve()), os.getpid())
            if key not in _ENVS:
                try:
                    _ENVS[key] = lmdb.open(
                        str(self.path),
                        readonly=True,
                        lock=False,
                        readahead=False,
                        meminit=False,
                        max_readers=1024,
                    )
                except lmdb.Error as exc:
                    raise DataFormatError(f"cannot open LMDB store {self.path}: {exc}") from exc
            self._env = _ENVS[key]
            self._pid = os.getpid()
        return self._env

    def close(self) -> None:
        """Close the LMDB environment of this process (it is re-opened on the next read)."""
        env = _ENVS.pop((str(self.path.resolve()), os.getpid()), None)
        if env is not None:
            env.close()
        self._env = None

    def __enter__(self) -> LmdbPatchStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return int(self._open().stat()["entries"])

    def keys(self) -> Iterator[str]:
        """Iterate over all keys (UTF-8 decoded)."""
        with self._open().begin(buffers=False) as txn:
            for key in txn.cursor().iternext(keys=True, values=False):
                yield bytes(key).decode("utf-8")

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        with self._open().begin() as txn:
            return txn.get(key.encode("utf-8")) is not None

    def read(self, key: str, bands: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Return the arrays stored under ``key``, optionally only ``bands``.

        Raises:
            MissingKeyError: ``key`` is absent, or a requested band is not in the value.
        """
        with self._open().begin(buffers=True) as txn:  # zero-copy view into the map, copied once per band
            blob = txn.get(key.encode("utf-8"))
            if blob is None:
                raise MissingKeyError(f"LMDB store {self.path} has no key {key!r}")
            arrays = decode_value(blob, key=key, store=self.path, bands=bands)
        if bands is None:
            return arrays
        missing = [b for b in bands if b not in arrays]
        if missing:
            raise MissingKeyError(
                f"LMDB store {self.path}, key {key!r}: band(s) {missing} absent; it holds {sorted(arrays)}"
            )
        return {b: arrays[b] for b in bands}

    def read_s2(self, patch_id: str, bands: Sequence[str]) -> dict[str, np.ndarray]:
        """Read S2 bands of ``patch_id``."""
        return self.read(patch_id, bands)

    def read_s1(self, s1_name: str, bands: Sequence[str]) -> dict[str, np.ndarray]:
        """Read S1 bands of ``s1_name``."""
        return self.read(s1_name, bands)

    def read_reference_map(self, patch_id: str) -> np.ndarray:
        """Read the CLC Level-3 reference map of ``patch_id``."""
        return self.read(patch_id + REFERENCE_MAP_SUFFIX, [REFERENCE_MAP_TENSOR])[REFERENCE_MAP_TENSOR]
