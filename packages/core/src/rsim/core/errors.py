"""Exceptions raised on bad input. Every message names the file, key or field and what was expected."""

from __future__ import annotations


class DataFormatError(ValueError):
    """A file or value exists but does not have the expected format (dtype, band count, shape, bytes)."""


class MissingKeyError(KeyError):
    """A key (patch id, band name, store key) is absent; ``str()`` gives the plain message."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
