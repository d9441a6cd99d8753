"""The transformers rewriter end to end, offline: tiny random models saved locally, tokenizers built here."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from rsim.bigearthnet_txt.attributes import extract_attributes
from rsim.bigearthnet_txt.cli import main
from rsim.bigearthnet_txt.data.testing import save_tiny_model, word_tokenizer
from rsim.bigearthnet_txt.generate import GeneratorConfig, PatchContext, generate_patch
from rsim.bigearthnet_txt.pipeline import generate_archive, read_annotations
from rsim.bigearthnet_txt.rewrite import (
    PARAPHRASE_PROMPT,
    REFINE_PROMPT,
    LLMRewriterConfig,
    TransformersRewriter,
    nomenclature_text,
    rewrite_rows,
    rewriter_config_from_dict,
)
from rsim.core.testing import write_benv2_fixture

torch.set_num_threads(1)


def _rows() -> list[dict]:  # type: ignore[type-arg]
    ref = np.full((120, 120), 311, dtype=np.uint16)
    ref[:, :60] = 211
    ref[:30, 100:] = 231
    rows = []
    for k in range(3):
        ctx = PatchContext(f"P_20170613T101031_X_00_0{k}", "S1", "train", "Austria", "summer", 47.0, 13.0, "Dfb")
        rows += generate_patch(extract_attributes(ref), ctx, GeneratorConfig(), k)
    return rows


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Llama + a word-level tokenizer covering the prompts, saved with save_pretrained."""
    out = tmp_path_factory.mktemp("tiny_lm")
    texts = [r["output"] for r in _rows()] + [PARAPHRASE_PROMPT, REFINE_PROMPT, nomenclature_text()]
    tok = word_tokenizer([*texts, "Rewritten description:"], out)
    save_tiny_model(out, "llama", len(tok), seed=0)
    return out


def _cfg(path: Path, **kw) -> LLMRewriterConfig:  # type: ignore[no-untyped-def]
    kw.setdefault("max_new_tokens", 6)
    kw.setdefault("device", "cpu")
    return LLMRewriterConfig(model_path=str(path), **kw)


def test_llm_rewriter_batched_seeded_and_fact_checked(tiny_lm: Path) -> None:
    captions = [r["output"] for r in _rows() if r["type"] == "captioning"]
    assert len(captions) == 3
    sampler = TransformersRewriter(_cfg(tiny_lm, batch_size=2, temperature=1.0, seed=3))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = sampler(captions)
    assert torch.equal(torch.get_rng_state(), state)  # sampling does not touch the caller's RNG
    assert len(first) == 3 and all(isinstance(t, str) and t for t in first)
    assert sampler(captions) == first  # reseeded per batch: reproducible
    prompt = sampler.paraphrase_prompts(captions[:1])[0]
    assert captions[0] in prompt and "Artificial surfaces: Urban fabric" in prompt and "Do not add" in prompt
    # greedy decoding with left padding: a batch gives what one-by-one decoding gives
    greedy = TransformersRewriter(_cfg(tiny_lm, batch_size=3, temperature=0.0))
    one_by_one = TransformersRewriter(_cfg(tiny_lm, batch_size=1, temperature=0.0))
    assert greedy(captions) == one_by_one(captions)
    # random words never restate every fact: each draft is refined once, then the template is kept
    rows = _rows()
    calls: list[list[str]] = []
    refine = greedy.refine

    def spy(templates: list[str], drafts: list[str], problems: list[str]) -> list[str]:
        calls.append(problems)
        return refine(templates, drafts, problems)

    greedy.refine = spy  # type: ignore[method-assign]
    new_rows, results = rewrite_rows(rows, greedy, refine_rounds=1)
    assert len(results) == 3 and not any(r.accepted for r in results) and all(r.rounds == 1 for r in results)
    assert len(calls) == 1 and all("leaves out" in p and "Arable land" in p for p in calls[0])
    assert new_rows == rows  # fall back to the template text, other rows untouched
    refine_prompt = greedy.refine_prompts([captions[0]], ["draft"], ["it leaves out: summer"])[0]
    assert "leaves out: summer" in refine_prompt and captions[0] in refine_prompt


def test_seq2seq_chat_template_and_errors(tmp_path: Path, tiny_lm: Path) -> None:
    texts = [r["output"] for r in _rows()] + [PARAPHRASE_PROMPT, nomenclature_text(), "Rewritten description:"]
    tok = word_tokenizer(texts, tmp_path / "t5", chat_template="{% for m in messages %}USER: {{ m['content'] }}\n"
                         "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}")  # fmt: skip
    save_tiny_model(tmp_path / "t5", "t5", len(tok))
    t5 = TransformersRewriter(_cfg(tmp_path / "t5", temperature=0.0))
    assert t5.seq2seq and t5.paraphrase_prompts(["x"])[0].startswith("USER: You rewrite")
    assert t5.paraphrase_prompts(["x"])[0].endswith("ASSISTANT:")
    assert len(t5(texts[:2])) == 2
    with pytest.raises(FileNotFoundError, match="no config.json"):
        TransformersRewriter(_cfg(tmp_path / "absent"))
    with pytest.raises(ValueError, match="unknown rewriter option"):
        rewriter_config_from_dict({"model_path": "x", "beam": 3})
    with pytest.raises(ValueError, match="model_path"):
        rewriter_config_from_dict({"batch_size": 3})


def test_generate_with_rewriter_on_dask_and_cli(
    tiny_lm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fx = write_benv2_fixture(tmp_path / "benv2", splits={"train": 2, "test": 1})
    common = {"shard_size": 2, "processes": False, "n_workers": 1, "show_progress": False, "climate_source": "none"}
    plain = generate_archive(fx.root, tmp_path / "plain", fx.metadata, **common)  # type: ignore[arg-type]
    cfg = _cfg(tiny_lm, temperature=0.0, batch_size=4)
    report = generate_archive(fx.root, tmp_path / "llm", fx.metadata, rewriter=cfg, **common)  # type: ignore[arg-type]
    assert report.captions_rewritten == 3 and report.rewrites_accepted == 0 and report.shards_written == 2
    pd.testing.assert_frame_equal(read_annotations(tmp_path / "llm"), read_annotations(tmp_path / "plain"))
    assert plain.rows_written == report.rows_written
    with pytest.raises(FileNotFoundError, match="no config.json"):  # raised on the worker, no shard left behind
        generate_archive(fx.root, tmp_path / "bad", fx.metadata, rewriter=_cfg(tmp_path / "none"), **common)  # type: ignore[arg-type]
    assert not list((tmp_path / "bad").glob("*.parquet*"))
    with pytest.raises(ValueError, match="other options"):  # the rewriter is part of the recorded options
        generate_archive(fx.root, tmp_path / "llm", fx.metadata, rewriter=_cfg(tiny_lm, seed=1), **common)  # type: ignore[arg-type]
    cfg_file = tmp_path / "gen.yaml"
    cfg_file.write_text(
        f"box_axis: xy\nrewriter:\n  model_path: {tiny_lm}\n  device: cpu\n  max_new_tokens: 4\n  refine_rounds: 0\n"
    )
    argv = ["generate", str(fx.root), str(tmp_path / "cli"), "--metadata", str(fx.metadata_path), "--threads",
            "--workers", "1", "--climate-source", "none", "--no-progress", "--config", str(cfg_file),
            "--rewriter-batch-size", "2"]  # fmt: skip
    assert main(argv) == 0
    assert "3 captions, 0 rewrites accepted" in capsys.readouterr().out
    frame = read_annotations(tmp_path / "cli")
    assert len(frame) == plain.rows_written
    recorded = json.loads((tmp_path / "cli" / "_generator.json").read_text())["rewriter"]
    assert recorded["batch_size"] == 2 and recorded["max_new_tokens"] == 4 and recorded["model_path"] == str(tiny_lm)
