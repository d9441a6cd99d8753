"""Fixture writers: tiny datasets in the official on-disk layouts, for tests, demos and benchmarks."""

from rsim.core.testing.bigearthnet import BenV2Fixture, write_benv2_fixture

__all__ = ["BenV2Fixture", "write_benv2_fixture"]
