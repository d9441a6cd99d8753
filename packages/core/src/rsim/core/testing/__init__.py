"""Fixture writers: tiny datasets in the official on-disk layouts, for tests, demos and benchmarks."""

from rsim.core.testing.bigearthnet import BenV2Fixture, write_benv2_fixture, write_benv2_lmdb

__all__ = ["BenV2Fixture", "write_benv2_fixture", "write_benv2_lmdb"]
