"""Optional rewriting stage: a ``Rewriter`` protocol (identity by default) and a fact checker.

A rewrite is kept only when it states exactly the facts of the template text: the same class names, numbers
(areas, percentages, counts), countries, seasons, climate codes and compass words. Any added or dropped fact
rejects it and the template text is kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from rsim.bigearthnet_txt.attributes import DIRECTIONS
from rsim.bigearthnet_txt.context import COUNTRIES, EUROPEAN_ZONES, SEASONS
from rsim.core.data.nomenclature import BEN19_LABELS

_NUMBER_WORDS = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6"}
_TERMS = sorted([*BEN19_LABELS, *COUNTRIES, *SEASONS, *DIRECTIONS, *EUROPEAN_ZONES, "ET", "EF"], key=len, reverse=True)
_TERM = re.compile(r"(?<!\w)(" + "|".join(re.escape(t) for t in _TERMS) + r")(?!\w)")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


class Rewriter(Protocol):
    """Anything that rewrites a batch of texts (e.g. a local causal LM prompted to paraphrase)."""

    def __call__(self, texts: list[str]) -> list[str]: ...  # noqa: D102


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
    """Outcome of one text."""

    text: str
    accepted: bool
    added: frozenset[str]
    dropped: frozenset[str]


def check_rewrite(original: str, rewritten: str) -> RewriteResult:
    """Accept ``rewritten`` only if it states the same facts as ``original``."""
    a, b = facts(original), facts(rewritten)
    ok = a == b and bool(rewritten.strip())
    return RewriteResult(rewritten if ok else original, ok, b - a, a - b)


def rewrite_rows(
    rows: Iterable[dict[str, Any]], rewriter: Rewriter | None = None, *, types: tuple[str, ...] = ("captioning",)
) -> tuple[list[dict[str, Any]], list[RewriteResult]]:
    """Rewrite the ``output`` of rows of ``types``; rejected rewrites keep the template text.

    Returns:
        The rows (copies) and one result per rewritten row.
    """
    rewriter = rewriter or IdentityRewriter()
    rows = [dict(r) for r in rows]
    targets = [i for i, r in enumerate(rows) if r["type"] in types]
    new = rewriter([rows[i]["output"] for i in targets])
    if len(new) != len(targets):
        raise ValueError(f"rewriter returned {len(new)} texts for {len(targets)} inputs")
    results = []
    for i, text in zip(targets, new, strict=True):
        result = check_rewrite(rows[i]["output"], text)
        rows[i]["output"] = result.text
        results.append(result)
    return rows, results
