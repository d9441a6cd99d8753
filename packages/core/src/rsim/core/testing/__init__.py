"""Fixture writers: tiny datasets in the official on-disk layouts, for tests, demos and benchmarks."""

from rsim.core.testing.bigearthnet import BenV2Fixture, write_benv2_fixture, write_benv2_lmdb
from rsim.core.testing.steps import fit_one_step

__all__ = ["BenV2Fixture", "fit_one_step", "write_benv2_fixture", "write_benv2_lmdb"]
