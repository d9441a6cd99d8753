"""TerraScope: pixel-grounded geospatial reasoning VLM, Terra-CoT and TerraScope-Bench generators, evaluator.

Heavy modules (torch models, transformers) are imported lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BenchConfig": "rsim.terrascope.data.bench",
    "BenchItem": "rsim.terrascope.data.bench",
    "load_bench": "rsim.terrascope.data.bench",
    "write_bench": "rsim.terrascope.data.bench",
    "CotConfig": "rsim.terrascope.data.cot",
    "CotRecord": "rsim.terrascope.data.cot",
    "load_cot": "rsim.terrascope.data.cot",
    "write_cot": "rsim.terrascope.data.cot",
    "generate_bench": "rsim.terrascope.data.generate",
    "generate_cot": "rsim.terrascope.data.generate",
    "generate_building_change": "rsim.terrascope.data.xbd",
    "TerraCotDataModule": "rsim.terrascope.data.datamodule",
    "TerraScopeModel": "rsim.terrascope.models.terrascope",
    "TerraScopeTask": "rsim.terrascope.tasks",
    "build_model": "rsim.terrascope.build",
    "evaluate": "rsim.terrascope.evaluate",
    "EvalReport": "rsim.terrascope.evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rsim.terrascope' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
