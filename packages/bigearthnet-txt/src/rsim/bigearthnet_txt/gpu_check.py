"""One training step of the RS-InternVL-style task on generated BigEarthNet.txt data (``benchmarks/gpu_check.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from rsim.bigearthnet_txt.data import BigEarthNetTxtDataModule
from rsim.bigearthnet_txt.generate import GeneratorConfig
from rsim.bigearthnet_txt.pipeline import ShardTask, annotate, select_patches
from rsim.bigearthnet_txt.tasks import RSInternVLTask
from rsim.core.data import BigEarthNetV2Tree
from rsim.core.testing import fit_one_step, write_benv2_fixture


def char_tokenizer(texts: list[str], out: Path) -> Path:
    """Save a character-level transformers tokenizer covering ``texts`` (built locally, nothing downloaded)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set("".join(texts)) | set("\n"))
    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, **{c: i + 3 for i, c in enumerate(chars)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    fast.save_pretrained(out)
    return out


def tiny_lm_config(vocab_size: int, hidden: int = 64) -> dict[str, Any]:
    """A 2-layer Llama config with random weights."""
    return {
        "model_type": "llama", "vocab_size": vocab_size, "hidden_size": hidden, "intermediate_size": 2 * hidden,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 1024,
        "initializer_range": 0.5,  # a frozen random LM head needs large weights to express confident logits
    }  # fmt: skip


def run(tmp: Path, accelerator: str = "cuda", precision: Any = "16-mixed", small: bool = False) -> float:
    """Train one step (tiny LM and ViTs with ``small``, else LM width 896, ViT-S) on generated rows; return loss."""
    fx = write_benv2_fixture(tmp / "benv2", splits={"train": 2, "validation": 1, "test": 1})
    tree = BigEarthNetV2Tree(fx.root)
    patches = select_patches(tree, fx.metadata, climate_source="none")
    task_def = ShardTask(str(fx.root), "", tuple(patches), GeneratorConfig(), 0, "none")
    frame = pd.DataFrame([r for p in patches for r in annotate(tree, p, task_def)])
    frame.to_parquet(tmp / "ann.parquet")
    tokenizer = char_tokenizer(list(frame["input"]) + list(frame["output"]), tmp / "tokenizer")
    vit = {"patch_size": 20, "embed_dim": 32, "depth": 1, "num_heads": 2} if small else {"patch_size": 12}
    data = BigEarthNetTxtDataModule(str(tmp / "ann.parquet"), str(fx.root), batch_size=2, types=["binary", "mcq"])
    task = RSInternVLTask(
        str(tokenizer), lm_config=tiny_lm_config(256, 64 if small else 896), encoder="vit_small_patch16_224",
        encoder_kwargs=vit,
    )  # fmt: skip
    return fit_one_step(task, data, tmp, accelerator=accelerator, precision=precision)
