from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def benv2_fixture(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from rsim.core.testing import write_benv2_fixture

    return write_benv2_fixture(tmp_path_factory.mktemp("benv2"), seed=0)


@pytest.fixture(scope="session")
def benv2_lmdb(benv2_fixture, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    from rsim.core.testing import write_benv2_lmdb

    return write_benv2_lmdb(benv2_fixture.root, tmp_path_factory.mktemp("lmdb") / "ben.lmdb")
