"""Fixture writers: tiny datasets in the official on-disk layouts, for tests, demos and benchmarks.

``fit_one_step`` is imported lazily, so the fixture writers do not pull in Lightning.
"""

from typing import Any

from rsim.core.testing.bigearthnet import BenV2Fixture, write_benv2_fixture, write_benv2_lmdb


def __getattr__(name: str) -> Any:
    if name == "fit_one_step":
        from rsim.core.testing.steps import fit_one_step

        return fit_one_step
    raise AttributeError(f"module 'rsim.core.testing' has no attribute {name!r}")


__all__ = ["BenV2Fixture", "fit_one_step", "write_benv2_fixture", "write_benv2_lmdb"]
