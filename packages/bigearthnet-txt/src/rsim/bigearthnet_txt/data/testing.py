"""Tiny, randomly initialised transformers models and word-level tokenizers built locally (tests, smoke runs).

Nothing is downloaded: the tokenizer vocabulary comes from the given texts and the weights are random.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_WORD = re.compile(r"\w+|[^\w\s]")


def word_tokenizer(
    texts: Iterable[str], out: str | Path, *, bert_style: bool = False, chat_template: str | None = None
) -> Any:
    """Save (and return) a word-level ``PreTrainedTokenizerFast`` whose vocabulary covers ``texts``.

    Args:
        texts: Texts whose words and punctuation become the vocabulary.
        out: Folder to save into.
        bert_style: Add ``[CLS]``/``[SEP]`` around every sequence (encoder models such as BERT).
        chat_template: Optional Jinja chat template stored with the tokenizer.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for t in texts for w in _WORD.findall(t)})
    specials = ["<pad>", "<eos>", "<unk>", "[CLS]", "[SEP]"]
    vocab = {w: i for i, w in enumerate([*specials, *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if bert_style:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 3), ("[SEP]", 4)]
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>", cls_token="[CLS]",
        sep_token="[SEP]", model_max_length=4096,
    )  # fmt: skip
    if chat_template is not None:
        fast.chat_template = chat_template
    fast.save_pretrained(out)
    return fast


def save_tiny_model(out: str | Path, kind: str, vocab_size: int, *, seed: int = 0, hidden: int = 32) -> Path:
    """Save a random 2-layer ``llama`` (causal), ``t5`` (seq2seq) or ``bert`` (encoder) model to ``out``."""
    import torch
    from transformers import (
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        BertConfig,
        LlamaConfig,
        T5Config,
    )

    torch.manual_seed(seed)
    model: Any
    if kind == "llama":
        config: Any = LlamaConfig(
            vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096, pad_token_id=0,
            eos_token_id=1, bos_token_id=None, initializer_range=0.5,
        )  # fmt: skip
        model = AutoModelForCausalLM.from_config(config)
    elif kind == "t5":
        t5: dict[str, Any] = {
            "vocab_size": vocab_size, "d_model": hidden, "d_kv": 8, "d_ff": 2 * hidden, "num_layers": 2,
            "num_heads": 4, "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1,
        }  # fmt: skip
        config = T5Config(**t5)
        model = AutoModelForSeq2SeqLM.from_config(config)
    elif kind == "bert":
        config = BertConfig(
            vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=1024, pad_token_id=0,
        )  # fmt: skip
        model = AutoModel.from_config(config)
    else:
        raise ValueError(f"kind {kind!r}: expected llama, t5 or bert")
    model.save_pretrained(out)
    return Path(out)
