"""Optional rewriting stage: ``Rewriter`` protocol, identity default, local LLM rewriter, fact checker.

A rewrite is kept only when it states exactly the facts of the template text: the same class names, numbers
(areas, percentages, counts), countries, seasons, climate codes and compass words. Any added or dropped fact
rejects it; a rewriter with a ``refine`` method then gets ``refine_rounds`` chances to repair its draft against
the template (the paper's self-refinement), and the template text is kept when it still fails.
"""

from __future__ import annotations

import dataclasses
import os
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from rsim.bigearthnet_txt.attributes import DIRECTIONS
from rsim.bigearthnet_txt.context import COUNTRIES, EUROPEAN_ZONES, SEASONS, hierarchy
from rsim.core.data.nomenclature import BEN19_LABELS

_NUMBER_WORDS = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6"}
_TERMS = sorted([*BEN19_LABELS, *COUNTRIES, *SEASONS, *DIRECTIONS, *EUROPEAN_ZONES, "ET", "EF"], key=len, reverse=True)
_TERM = re.compile(r"(?<!\w)(" + "|".join(re.escape(t) for t in _TERMS) + r")(?!\w)")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_CANONICAL = {t.lower(): t for t in _TERMS}
#: CLC Level-1 group names (codes 1xx..5xx).
CLC_LEVEL1 = {
    1: "Artificial surfaces", 2: "Agricultural areas", 3: "Forest and semi-natural areas", 4: "Wetlands",
    5: "Water bodies",
}  # fmt: skip


class Rewriter(Protocol):
    """Anything that rewrites a batch of texts (e.g. a local causal LM prompted to paraphrase)."""

    def __call__(self, texts: list[str]) -> list[str]: ...  # noqa: D102


@runtime_checkable
class RefiningRewriter(Protocol):
    """A rewriter that can also repair its drafts against the template (self-refinement)."""

    def __call__(self, texts: list[str]) -> list[str]: ...  # noqa: D102

    def refine(self, templates: list[str], drafts: list[str], problems: list[str]) -> list[str]: ...  # noqa: D102


class IdentityRewriter:
    """The default: returns the template texts unchanged."""

    def __call__(self, texts: list[str]) -> list[str]:
        """Return ``texts``."""
        return list(texts)


def facts(text: str) -> frozenset[str]:
    """Facts stated in a text: vocabulary terms (case-sensitive names, lower-case seasons/directions) and numbers.

    ``one contiguous region`` counts as the number 1; thousands separators are removed.
    """
    found = {m.group(1).lower() for m in _TERM.finditer(text)}
    numbers = {n.replace(",", "") for n in _NUMBER.findall(text)}
    for word, digit in _NUMBER_WORDS.items():
        if re.search(rf"\b{word}\b", text, flags=re.IGNORECASE):
            numbers.add(digit)
    return frozenset(found | {f"#{n}" for n in numbers})


@dataclass(frozen=True)
class RewriteResult:
    """Outcome of one text (``rounds``: refinement rounds used, 0 when the first draft was kept or none ran)."""

    text: str
    accepted: bool
    added: frozenset[str]
    dropped: frozenset[str]
    rounds: int = 0


def check_rewrite(original: str, rewritten: str) -> RewriteResult:
    """Accept ``rewritten`` only if it states the same facts as ``original``."""
    a, b = facts(original), facts(rewritten)
    ok = a == b and bool(rewritten.strip())
    return RewriteResult(rewritten if ok else original, ok, b - a, a - b)


def describe_problems(result: RewriteResult) -> str:
    """Human-readable list of the facts a draft added or dropped (fed back to the LLM when refining)."""

    def show(items: frozenset[str]) -> str:
        return ", ".join(sorted(_CANONICAL.get(i, i.lstrip("#")) for i in items))

    parts = []
    if result.dropped:
        parts.append(f"it leaves out: {show(result.dropped)}")
    if result.added:
        parts.append(f"it adds facts not in the original: {show(result.added)}")
    return "; ".join(parts) or "it is empty"


def rewrite_rows(
    rows: Iterable[dict[str, Any]],
    rewriter: Rewriter | None = None,
    *,
    types: tuple[str, ...] = ("captioning",),
    refine_rounds: int = 1,
) -> tuple[list[dict[str, Any]], list[RewriteResult]]:
    """Rewrite the ``output`` of rows of ``types``; rejected rewrites are refined, then fall back to the template.

    Args:
        rows: Generated rows (not modified).
        rewriter: Batch rewriter; identity when ``None``.
        types: Row types whose ``output`` is rewritten.
        refine_rounds: Self-refinement rounds for rejected drafts (only if the rewriter has ``refine``).

    Returns:
        The rows (copies) and one result per rewritten row.

    Raises:
        ValueError: The rewriter returned the wrong number of texts.
    """
    rewriter = rewriter or IdentityRewriter()
    rows = [dict(r) for r in rows]
    targets = [i for i, r in enumerate(rows) if r["type"] in types]
    templates = [str(rows[i]["output"]) for i in targets]
    drafts = _checked_call(rewriter, templates)
    results = [check_rewrite(t, d) for t, d in zip(templates, drafts, strict=True)]
    if isinstance(rewriter, RefiningRewriter):
        for round_ in range(1, refine_rounds + 1):
            todo = [k for k, r in enumerate(results) if not r.accepted]
            if not todo:
                break
            fixed = rewriter.refine(
                [templates[k] for k in todo], [drafts[k] for k in todo], [describe_problems(results[k]) for k in todo]
            )
            if len(fixed) != len(todo):
                raise ValueError(f"rewriter.refine returned {len(fixed)} texts for {len(todo)} inputs")
            for k, text in zip(todo, fixed, strict=True):
                drafts[k] = text
                results[k] = dataclasses.replace(check_rewrite(templates[k], text), rounds=round_)
    for i, result in zip(targets, results, strict=True):
        rows[i]["output"] = result.text
    return rows, results


def _checked_call(rewriter: Rewriter, texts: list[str]) -> list[str]:
    if not texts:
        return []
    new = list(rewriter(texts))
    if len(new) != len(texts):
        raise ValueError(f"rewriter returned {len(new)} texts for {len(texts)} inputs")
    return new


# ---------------------------------------------------------------------------------------------- LLM rewriter
def nomenclature_text() -> str:
    """The 19 classes grouped by CLC Level 1, one group per line (shown to the LLM)."""
    groups: dict[int, list[str]] = {}
    for name in BEN19_LABELS:
        groups.setdefault(hierarchy().level1[name], []).append(name)
    return "\n".join(f"- {CLC_LEVEL1[k]}: {'; '.join(v)}" for k, v in sorted(groups.items()))


#: Paraphrase prompt [assumption: the paper's prompts are not published]. ``{nomenclature}`` and ``{text}``.
PARAPHRASE_PROMPT = (
    "You rewrite descriptions of Sentinel-2 satellite image patches. Land cover follows this CORINE Land Cover "
    "nomenclature (19 classes grouped by their level-1 category):\n{nomenclature}\n\n"
    "Paraphrase the description below with different wording and sentence structure. Keep every fact: every "
    "class name exactly as written, every number, percentage and area, the country, the season, the climate "
    "zone code and every compass direction. Do not add any fact, class, number or place that is not in the "
    "description. Answer with the rewritten description only.\n\nDescription: {text}"
)
#: Self-refinement prompt: ``{text}`` (template), ``{draft}`` and ``{problems}`` (from the fact checker).
REFINE_PROMPT = (
    "Original description of a satellite image patch:\n{text}\n\nA paraphrase of it:\n{draft}\n\n"
    "The paraphrase is not faithful: {problems}. Rewrite the paraphrase so that it states exactly the facts of "
    "the original (same class names, numbers, country, season, climate zone and directions), nothing more. "
    "Answer with the corrected paraphrase only."
)


@dataclass(frozen=True)
class LLMRewriterConfig:
    """Options of :class:`TransformersRewriter` (README "Assumptions"; recorded in ``_generator.json``).

    Attributes:
        model_path: Local folder of a transformers causal or seq2seq LM and its tokenizer (never downloaded).
        device: ``auto`` (CUDA when available, else CPU) or a torch device string.
        dtype: ``auto`` (bfloat16 on CUDA, float32 on CPU), ``float32``, ``float16`` or ``bfloat16``.
        batch_size: Texts per ``generate`` call.
        max_new_tokens: Generation budget per text.
        temperature: 0 = greedy decoding; > 0 samples with this temperature and ``top_p``.
        top_p: Nucleus sampling mass.
        seed: Base seed; each batch reseeds with ``(seed, crc32 of its first text)`` so output is reproducible.
        refine_rounds: Self-refinement rounds for rejected drafts.
        use_chat_template: Wrap the prompt in the tokenizer's chat template when it has one.
        prompt: Paraphrase prompt (``{nomenclature}``, ``{text}``).
        refine_prompt: Refinement prompt (``{text}``, ``{draft}``, ``{problems}``).
    """

    model_path: str
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 8
    max_new_tokens: int = 320
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 0
    refine_rounds: int = 1
    use_chat_template: bool = True
    prompt: str = PARAPHRASE_PROMPT
    refine_prompt: str = REFINE_PROMPT

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_new_tokens < 1 or self.refine_rounds < 0:
            raise ValueError("batch_size and max_new_tokens must be >= 1 and refine_rounds >= 0")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping (JSON)."""
        return asdict(self)


class TransformersRewriter:
    """Paraphrases texts with a local transformers LM (causal or encoder-decoder), batched on one device.

    Args:
        config: Model path and generation options.

    Raises:
        FileNotFoundError: ``config.model_path`` is not a folder with a ``config.json``.
    """

    def __init__(self, config: LLMRewriterConfig) -> None:
        import torch
        from rsim.bigearthnet_txt.local_models import local_model_folder, resolve_device
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        path = local_model_folder(config.model_path, role="rewriter model")
        self.config = config
        device = resolve_device(config.device)
        self.device = torch.device(device)
        dtype = config.dtype
        if dtype == "auto":
            dtype = "bfloat16" if self.device.type == "cuda" else "float32"
        if dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"dtype {dtype!r}: expected auto, float32, float16 or bfloat16")
        model_config = AutoConfig.from_pretrained(path, local_files_only=True)
        self.seq2seq = bool(getattr(model_config, "is_encoder_decoder", False))
        auto = AutoModelForSeq2SeqLM if self.seq2seq else AutoModelForCausalLM
        model: Any = auto.from_pretrained(path, local_files_only=True, dtype=getattr(torch, dtype))
        self.model: Any = model.to(self.device)
        self.model.eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        if self.tokenizer.pad_token_id is None:
            if self.tokenizer.eos_token_id is None:
                raise ValueError(f"tokenizer of {path} has neither a pad nor an eos token")
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"  # decoder-only generation continues the last prompt token
        self._nomenclature = nomenclature_text()

    def _format(self, message: str) -> str:
        template = getattr(self.tokenizer, "chat_template", None)
        if self.config.use_chat_template and template:
            chat = [{"role": "user", "content": message}]
            return str(self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True))
        return message + "\n\nRewritten description:"

    def paraphrase_prompts(self, texts: Sequence[str]) -> list[str]:
        """The formatted paraphrase prompts."""
        return [self._format(self.config.prompt.format(nomenclature=self._nomenclature, text=t)) for t in texts]

    def refine_prompts(self, templates: Sequence[str], drafts: Sequence[str], problems: Sequence[str]) -> list[str]:
        """The formatted refinement prompts."""
        return [
            self._format(self.config.refine_prompt.format(text=t, draft=d, problems=p))
            for t, d, p in zip(templates, drafts, problems, strict=True)
        ]

    def generate(self, prompts: Sequence[str]) -> list[str]:
        """Generated continuations of ``prompts`` (new tokens only, first paragraph, stripped)."""
        import torch

        out: list[str] = []
        cfg = self.config
        sample = cfg.temperature > 0
        for start in range(0, len(prompts), cfg.batch_size):
            batch = list(prompts[start : start + cfg.batch_size])
            enc = self.tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=not self._has_chat())
            enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            options: dict[str, Any] = {"max_new_tokens": cfg.max_new_tokens, "do_sample": sample}
            if sample:
                options.update(temperature=cfg.temperature, top_p=cfg.top_p)
            cuda = [self.device.index or 0] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=cuda), torch.inference_mode():  # the caller's RNG state is kept
                torch.manual_seed(zlib.crc32(f"{cfg.seed}\0{batch[0]}".encode()))
                ids = self.model.generate(**enc, **options, pad_token_id=self.tokenizer.pad_token_id)
            if not self.seq2seq:
                ids = ids[:, enc["input_ids"].shape[1] :]
            for text in self.tokenizer.batch_decode(ids, skip_special_tokens=True):
                out.append(_clean(text))
        return out

    def _has_chat(self) -> bool:
        return bool(self.config.use_chat_template and getattr(self.tokenizer, "chat_template", None))

    def __call__(self, texts: list[str]) -> list[str]:
        """Paraphrase ``texts``."""
        return self.generate(self.paraphrase_prompts(texts))

    def refine(self, templates: list[str], drafts: list[str], problems: list[str]) -> list[str]:
        """Repair ``drafts`` against their ``templates`` given the checker's ``problems``."""
        return self.generate(self.refine_prompts(templates, drafts, problems))


def _clean(text: str) -> str:
    text = text.strip()
    for prefix in ("Rewritten description:", "Description:", "Paraphrase:"):
        if text.startswith(prefix):
            text = text[len(prefix) :].strip()
    return text.split("\n\n")[0].strip()


_CACHE: dict[str, TransformersRewriter] = {}


def cached_rewriter(config: LLMRewriterConfig) -> TransformersRewriter:
    """One :class:`TransformersRewriter` per process and config (Dask workers load the model once)."""
    key = repr(sorted(config.to_dict().items()))
    if key not in _CACHE:
        _CACHE.clear()  # one model in memory at a time
        _CACHE[key] = TransformersRewriter(config)
    return _CACHE[key]


def rewriter_config_from_dict(options: dict[str, Any]) -> LLMRewriterConfig:
    """Build a :class:`LLMRewriterConfig` from a mapping (e.g. the ``rewriter:`` section of a YAML file).

    Raises:
        ValueError: Unknown option names or no ``model_path``.
    """
    known = set(LLMRewriterConfig.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown rewriter option(s) {unknown}; expected some of {sorted(known)}")
    if "model_path" not in options:
        raise ValueError("rewriter options need model_path (a local transformers model folder)")
    return LLMRewriterConfig(**{**options, "model_path": os.fspath(options["model_path"])})
