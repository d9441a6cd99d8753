"""rsim-core: shared data, metrics, tasks and CLI for the rsim paper packages."""

__version__ = "0.1.0"
