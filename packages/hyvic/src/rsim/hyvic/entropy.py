"""Entropy-coding details shared by HyVIC and the adapted CompressAI baselines.

CompressAI's ``GaussianConditional`` codes each latent with the CDF of the *smallest* scale in its
64-entry log-spaced table that is >= the predicted scale. Rounding every scale up is a first-order bias: at
the small scales (0.11 - 1) where a trained low-rate model puts most latents, a 13 % larger scale costs up to
40 % more bits per symbol. On the demo model (``configs/demo.yaml``, lambda 1000, real Sentinel-2 crop) it
made the y bitstream 15 % larger than its likelihood. :class:`CodecGaussianConditional` picks the *nearest*
table entry in log scale instead (``index_rounding="nearest"``, the default); the over/under-estimates then
cancel to second order and the same 64-entry table codes y within 0.1 % of its likelihood. ``"up"``
reproduces CompressAI. Any index mapping decodes exactly (values outside a table's range use the coder's
bypass mode); the mapping only changes the size. The ``.hyv`` header records which one was used.

Both entropy models also cache the Python lists of their CDF tables that the C++ rANS coder takes, instead
of converting the tensors on every call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from torch import Tensor, nn

INDEX_ROUNDINGS = ("nearest", "up")


class _CachedTables:
    """Mixin: keep ``_quantized_cdf``/``_cdf_length``/``_offset`` as Python lists until the tensors change."""

    _quantized_cdf: Tensor
    _cdf_length: Tensor
    _offset: Tensor
    entropy_coder: Any

    def _tables(self) -> tuple[list[list[int]], list[int], list[int]]:
        key = tuple(
            (t.data_ptr(), t._version, tuple(t.shape)) for t in (self._quantized_cdf, self._cdf_length, self._offset)
        )
        cache = self.__dict__.get("_table_cache")
        if cache is None or cache[0] != key:
            cache = (
                key,
                (
                    self._quantized_cdf.tolist(),
                    self._cdf_length.reshape(-1).int().tolist(),
                    self._offset.reshape(-1).int().tolist(),
                ),
            )
            self.__dict__["_table_cache"] = cache
        return cache[1]

    def _encode(self, symbols: Tensor, indexes: Tensor) -> list[bytes]:
        cdf, lengths, offsets = self._tables()
        return [
            self.entropy_coder.encode_with_indexes(
                symbols[i].reshape(-1).int().tolist(), indexes[i].reshape(-1).int().tolist(), cdf, lengths, offsets
            )
            for i in range(symbols.shape[0])
        ]

    def _decode(self, strings: list[bytes], indexes: Tensor) -> Tensor:
        cdf, lengths, offsets = self._tables()
        out = torch.empty(indexes.shape, dtype=torch.float32)
        for i, s in enumerate(strings):
            idx = indexes[i].reshape(-1).int().tolist()
            values = self.entropy_coder.decode_with_indexes(s, idx, cdf, lengths, offsets)
            out[i] = torch.tensor(values, dtype=torch.float32).reshape(indexes.shape[1:])
        return out


def _check_coding_inputs(model: Any, strings: list[bytes], indexes: Tensor) -> None:
    if not isinstance(strings, (list, tuple)) or len(strings) != indexes.shape[0]:
        raise ValueError(f"expected a list of {indexes.shape[0]} byte strings, got {type(strings).__name__}")
    if model._quantized_cdf.numel() == 0:
        raise ValueError("uninitialised CDFs: call update() before coding")


class CodecEntropyBottleneck(_CachedTables, EntropyBottleneck):
    """CompressAI ``EntropyBottleneck`` (same parameters, likelihoods and bitstream) with cached CDF lists."""

    def compress(self, x: Tensor) -> list[bytes]:
        """Code ``x`` (B, C, ...) around the learned medians; one string per sample."""
        if self._quantized_cdf.numel() == 0:
            raise ValueError("uninitialised CDFs: call update() before coding")
        medians = self._get_medians().detach().reshape(1, -1, *([1] * (x.ndim - 2)))
        symbols = torch.round(x - medians)
        indexes = torch.arange(x.shape[1]).reshape(1, -1, *([1] * (x.ndim - 2))).expand_as(x)
        return self._encode(symbols, indexes)

    def decompress(self, strings: list[bytes], size: tuple[int, ...]) -> Tensor:
        """Decode strings from :meth:`compress` into (B, C, *size) dequantised values."""
        c = self._quantized_cdf.shape[0]
        indexes = torch.arange(c).reshape(1, c, *([1] * len(size))).expand(len(strings), c, *size)
        _check_coding_inputs(self, strings, indexes)
        medians = self._get_medians().detach().reshape(1, c, *([1] * len(size)))
        return self._decode(strings, indexes) + medians


class CodecGaussianConditional(_CachedTables, GaussianConditional):
    """CompressAI ``GaussianConditional`` with nearest-in-log-scale table indexes and cached CDF lists.

    Attributes:
        index_rounding: ``"nearest"`` (default) or ``"up"`` (CompressAI's smallest table scale >= scale).
    """

    index_rounding: str = "nearest"

    def build_indexes(self, scales: Tensor) -> Tensor:
        """Map predicted scales to scale-table indexes (see the module docstring)."""
        if self.index_rounding not in INDEX_ROUNDINGS:
            raise ValueError(f"index_rounding must be one of {INDEX_ROUNDINGS}, got {self.index_rounding!r}")
        scales = self.lower_bound_scale(scales)
        table = self.scale_table.to(scales)
        if self.index_rounding == "up":
            idx = torch.bucketize(scales, table)
        else:
            log_table = table.log()
            idx = torch.bucketize(scales.log(), (log_table[1:] + log_table[:-1]) / 2)
        return idx.clamp_(max=len(table) - 1).int()

    def compress(self, inputs: Tensor, indexes: Tensor, means: Tensor | None = None) -> list[bytes]:
        """Code ``round(inputs - means)`` with the CDFs picked by ``indexes``; one string per sample."""
        if inputs.shape != indexes.shape:
            raise ValueError(f"inputs {tuple(inputs.shape)} and indexes {tuple(indexes.shape)} differ in shape")
        if self._quantized_cdf.numel() == 0:
            raise ValueError("uninitialised CDFs: call update() before coding")
        symbols = torch.round(inputs - means) if means is not None else torch.round(inputs)
        return self._encode(symbols, indexes)

    def decompress(
        self, strings: list[bytes], indexes: Tensor, dtype: torch.dtype = torch.float, means: Tensor | None = None
    ) -> Tensor:
        """Decode strings from :meth:`compress` and add the means back."""
        _check_coding_inputs(self, strings, indexes)
        out = self._decode(strings, indexes).to(dtype)
        return out + means if means is not None else out


@contextmanager
def index_rounding(model: nn.Module, mode: str) -> Iterator[None]:
    """Temporarily set the scale-index rounding of every :class:`CodecGaussianConditional` in ``model``."""
    if mode not in INDEX_ROUNDINGS:
        raise ValueError(f"scale index rounding must be one of {INDEX_ROUNDINGS}, got {mode!r}")
    mods = [m for m in model.modules() if isinstance(m, CodecGaussianConditional)]
    old = [m.index_rounding for m in mods]
    for m in mods:
        m.index_rounding = mode
    try:
        yield
    finally:
        for m, o in zip(mods, old, strict=True):
            m.index_rounding = o


__all__ = ["INDEX_ROUNDINGS", "CodecEntropyBottleneck", "CodecGaussianConditional", "index_rounding"]
