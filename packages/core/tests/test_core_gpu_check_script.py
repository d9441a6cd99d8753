from __future__ import annotations

import subprocess
import sys

import pytest
from core_paths import REPO


@pytest.mark.slow
def test_gpu_check_runs_every_package_on_the_cpu() -> None:
    """The GPU check script (one AMP step per package) exercised on the CPU with small models."""
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--cpu-smoke"],
        capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    lines = [line for line in result.stdout.splitlines() if line.startswith("rsim-")]
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines and all(": ok (" in line for line in lines)
    assert any(line.startswith("rsim-core: ok") for line in lines)
