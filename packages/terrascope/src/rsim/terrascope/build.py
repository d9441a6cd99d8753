"""Building the tokenizer, the prompt layout and a :class:`TerraScopeModel` from plain configuration.

The causal LM is built from a transformers config (``lm={"model_type": "qwen2", "hidden_size": 64, ...}``, random
weights) or loaded from a local folder (``lm={"path": "/models/InternVL3-8B-LLM"}``); nothing is downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rsim.terrascope.models.terrascope import SpecialTokenIds, TerraScopeModel
from rsim.terrascope.models.vision import VisionEncoder

SPECIAL_TOKENS = (
    "<think>", "</think>", "<answer>", "</answer>", "[SEG]", "<REGION>", "<p>", "</p>", "<vp>", "</vp>",
    "<img>", "</img>", "<IMG_CONTEXT>",
)  # fmt: skip
SYSTEM_PROMPT = (
    "You are a remote sensing assistant. Reason step by step inside <think></think>; whenever you refer to a region "
    "of the image, segment it with [SEG]. Give the final answer inside <answer></answer>."
)

__all__ = [
    "SPECIAL_TOKENS",
    "SYSTEM_PROMPT",
    "build_lm",
    "build_model",
    "build_tokenizer",
    "format_prompt",
    "special_token_ids",
]


def build_tokenizer(source: str = "byte") -> Any:
    """A tokenizer with TerraScope's special tokens.

    Args:
        source: ``byte`` = a byte-level tokenizer built in memory (256 byte tokens + specials; for tiny random
            models), or a local folder holding a Hugging Face tokenizer.

    Raises:
        FileNotFoundError: ``source`` is neither ``byte`` nor an existing folder.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if source == "byte":
        from tokenizers import Tokenizer, decoders, models
        from tokenizers.pre_tokenizers import ByteLevel

        vocab = {c: i for i, c in enumerate(sorted(ByteLevel.alphabet()))}
        core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
        core.pre_tokenizer = ByteLevel(add_prefix_space=False, use_regex=False)
        core.decoder = decoders.ByteLevel()
        tok: Any = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|end|>", pad_token="<|pad|>")
    else:
        if not Path(source).is_dir():
            raise FileNotFoundError(f"tokenizer folder {source} does not exist (expected 'byte' or a local folder)")
        tok = AutoTokenizer.from_pretrained(source, local_files_only=True, trust_remote_code=False)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
    tok.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS)})
    return tok


def special_token_ids(tokenizer: Any) -> SpecialTokenIds:
    """Ids of ``[SEG]``, ``<REGION>``, ``<IMG_CONTEXT>``, eos and pad."""
    ids = tokenizer.convert_tokens_to_ids
    return SpecialTokenIds(
        seg=ids("[SEG]"),
        region=ids("<REGION>"),
        img_context=ids("<IMG_CONTEXT>"),
        eos=int(tokenizer.eos_token_id),
        pad=int(tokenizer.pad_token_id),
    )


def format_prompt(
    question: str,
    *,
    n_frames: int,
    tokens_per_image: int,
    with_sar: bool = False,
    chat_template: str = "plain",
    system_prompt: str = "",
) -> str:
    r"""The prompt text: ``<image>`` in ``question`` is replaced by the image blocks (one per frame, then SAR).

    Frames are labelled ``Image: t`` (1-based) when there are several.

    Args:
        question: Human turn (``"<image>\\n..."``); without ``<image>`` the blocks are put first.
        n_frames: Optical frames.
        tokens_per_image: Visual tokens per image.
        with_sar: Add one SAR block per frame after the optical ones.
        chat_template: ``plain`` (tiny models) or ``qwen`` (``<|im_start|>`` turns, as InternVL3/Qwen).
        system_prompt: System turn (``qwen`` template only).
    """
    block = "<img>" + "<IMG_CONTEXT>" * tokens_per_image + "</img>\n"
    label = n_frames > 1
    images = "".join((f"Image: {t + 1} " if label else "") + block for t in range(n_frames))
    if with_sar:
        images += "".join((f"SAR {t + 1} " if label else "SAR ") + block for t in range(n_frames))
    body = question.replace("<image>\n", images, 1) if "<image>" in question else images + question
    body = body.replace("<image>", "")
    if chat_template == "plain":
        return body + "\n"
    if chat_template == "qwen":
        system = f"<|im_start|>system\n{system_prompt}<|im_end|>\n" if system_prompt else ""
        return f"{system}<|im_start|>user\n{body}<|im_end|>\n<|im_start|>assistant\n"
    raise ValueError(f"unknown chat_template {chat_template!r}; expected 'plain' or 'qwen'")


def build_lm(lm: Mapping[str, Any], vocab_size: int) -> Any:
    """A causal LM from a config mapping (random init) or ``{"path": folder}`` (local weights).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: Neither ``path`` nor ``model_type`` is given.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    lm = dict(lm)
    if "path" in lm:
        path = lm.pop("path")
        if not Path(path).is_dir():
            raise FileNotFoundError(f"LM folder {path} does not exist")
        model: Any = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, **lm)
    else:
        if "model_type" not in lm:
            raise ValueError("lm config needs 'model_type' (e.g. 'qwen2') or 'path' (a local folder)")
        model_type = lm.pop("model_type")
        config = AutoConfig.for_model(model_type, vocab_size=vocab_size, **lm)
        model = AutoModelForCausalLM.from_config(config)
    if model.get_input_embeddings().num_embeddings < vocab_size:
        model.resize_token_embeddings(vocab_size)
    return model


def build_model(
    *,
    vision: Mapping[str, Any],
    lm: Mapping[str, Any],
    tokenizer: str | os.PathLike[str] = "byte",
    lora: Mapping[str, Any] | None = None,
    model_options: Mapping[str, Any] | None = None,
) -> tuple[TerraScopeModel, Any]:
    """Tokenizer and model from configuration.

    Args:
        vision: ``VisionEncoder`` arguments (``encoder``, ``model_name``, ``img_size``, ``weights``, kwargs). With
            ``encoder: internvit`` and an InternVL chat checkpoint, its ``mlp1`` projector initialises the projector.
        lm: See :func:`build_lm`.
        tokenizer: ``byte`` or a local tokenizer folder.
        lora: peft ``LoraConfig`` arguments (``r``, ``lora_alpha``, ``lora_dropout``, ``target_modules``) or ``None``.
        model_options: Further :class:`TerraScopeModel` keyword arguments.
    """
    tok = build_tokenizer(str(tokenizer))
    language = build_lm(lm, len(tok))
    if lora:
        from peft import LoraConfig, get_peft_model

        language = get_peft_model(language, LoraConfig(task_type="CAUSAL_LM", **dict(lora)))
    encoder = VisionEncoder(**dict(vision))
    model = TerraScopeModel(encoder, language, special_token_ids(tok), **dict(model_options or {}))
    projector = encoder.official_projector_state()
    if projector is not None:  # InternVL chat checkpoint: start from its pixel-shuffle projector (mlp1)
        try:
            model.projector.load_state_dict(projector, strict=True)
        except RuntimeError as err:
            raise ValueError(
                f"{encoder.weights}: mlp1 projector {tuple(projector['net.1.weight'].shape)} does not fit the "
                f"model's projector (vision width × 4 → LM width {model.hidden_dim}): {err}"
            ) from err
    return model, tok


def tokens_of(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` without BOS/EOS."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


__all__ += ["tokens_of"]
