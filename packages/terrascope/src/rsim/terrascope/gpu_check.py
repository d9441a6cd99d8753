"""One training step of TerraScope (stage 2, LoRA) on generated Terra-CoT records (for benchmarks/gpu_check.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rsim.core.testing import fit_one_step
from rsim.terrascope.data.datamodule import TerraCotDataModule
from rsim.terrascope.data.testing import write_cot_fixture
from rsim.terrascope.tasks import TerraScopeTask

TINY_VISION: dict[str, Any] = {
    "model_name": "vit_tiny_patch16_224",
    "img_size": 32,
    "patch_size": 4,
    "embed_dim": 32,
    "depth": 1,
    "num_heads": 2,
}
TINY_LM: dict[str, Any] = {
    "model_type": "qwen2",
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
}
# A random ViT-B/14 at 448 px (32×32 patches → 256 tokens, as InternViT tiles) and a 0.5B-class random Qwen2.
GPU_VISION: dict[str, Any] = {"model_name": "vit_base_patch14_dinov2", "img_size": 448}
GPU_LM: dict[str, Any] = {
    "model_type": "qwen2",
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 8,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 8192,
}


def run(tmp: Path, accelerator: str = "cuda", precision: Any = "16-mixed", small: bool = False) -> float:
    """Train one stage-2 step (LoRA LM, projector, mask branch, region injection) and return the loss."""
    fixture = write_cot_fixture(tmp / "cot", n_images=2, size=48, with_sar=True)
    size = TINY_VISION["img_size"] if small else GPU_VISION["img_size"]
    data = TerraCotDataModule(train_json=str(fixture.json_path), img_size=int(size), batch_size=2)
    task = TerraScopeTask(
        vision=TINY_VISION if small else GPU_VISION,
        lm=TINY_LM if small else GPU_LM,
        stage=2,
        lora={
            "r": 8,
            "lora_alpha": 16,
            "lora_dropout": 0.05,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
        },
        model_options={"max_region_tokens": 8 if small else 128, "prompt_dim": 32 if small else 256},
    )
    return fit_one_step(task, data, tmp, accelerator=accelerator, precision=precision)
