"""One CUDA + AMP pretraining step of CSMoE on a generated BigEarthNet v2 archive (for benchmarks/gpu_check.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rsim.core.data import BigEarthNetDataModule
from rsim.core.testing import fit_one_step, write_benv2_fixture
from rsim.csmoe.tasks import CSMoEPretrainTask


def run(tmp: Path, accelerator: str = "cuda", precision: Any = "16-mixed", small: bool = False) -> float:
    """Train one step (ViT-B Soft-MoE, or a tiny one with ``small``) on S1+S2 with GPU transforms; return the loss."""
    fixture = write_benv2_fixture(tmp / "ben", splits={"train": 8, "validation": 2, "test": 2})
    data = BigEarthNetDataModule(root=str(fixture.root), bands="S1S2", batch_size=8, num_workers=2)
    size: dict[str, Any] = (
        {"vit_size": "tiny", "embed_dim": 96, "num_heads": 3, "specific_depth": 1, "shared_depth": 1,
         "decoder_embed_dim": 64, "decoder_depth": 1, "decoder_num_heads": 4}
        if small
        else {"vit_size": "base"}
    )  # fmt: skip
    task = CSMoEPretrainTask(**size, moe_layers=["shared"], input_bands="S1S2")
    return fit_one_step(task, data, tmp, accelerator=accelerator, precision=precision, loss_key="train_loss")
