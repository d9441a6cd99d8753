"""Evaluator: strict (or lenient) answer parsers, accuracy per type/category, box mIoU/Acc@0.5, caption metrics.

Caption metrics follow the definitions of the COCO caption toolkit (pycocoevalcap): corpus BLEU-1..4 with the
closest-reference brevity penalty, ROUGE-L (LCS F-measure, beta 1.2, mean over captions) and CIDEr (tf-idf n-gram
cosine with clipping and a Gaussian length penalty, sigma 6, x10; document frequencies from the references).
They are written here (about 100 lines) because pycocoevalcap ships Java jars and a Java tokenizer; texts are
lower-cased and split on non-alphanumeric characters instead.

METEOR is the reference METEOR 1.5 jar run by pycocoevalcap (needs a Java runtime; the jar carries its own
English synonym and paraphrase data). BERTScore is torchmetrics' implementation run on a local encoder folder;
SBERT cosine mean-pools a local sentence encoder's last hidden states (sentence-transformers' default pooling).
"""

from __future__ import annotations

import math
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from rsim.bigearthnet_txt.local_models import local_model_folder, resolve_device
from rsim.core.metrics import BoxAccuracy

ParseMode = Literal["strict", "lenient"]
_NUM = r"(-?\d+(?:\.\d+)?)"
_BOX_STRICT = re.compile(rf"^\[\s*{_NUM}\s+{_NUM}\s*,\s*{_NUM}\s+{_NUM}\s*\]$")
_BOX_ANY = re.compile(rf"\[\s*{_NUM}[\s,]+{_NUM}\s*,\s*{_NUM}[\s,]+{_NUM}\s*\]")
_TOKEN = re.compile(r"\w+")


def _first_line(text: str) -> str:
    lines = str(text).strip().splitlines()
    return lines[0].strip() if lines else ""


def parse_yes_no(text: str, mode: ParseMode = "strict") -> str | None:
    """``yes``/``no`` or ``None``. Strict: the first line is exactly yes/no (case and a final period ignored)."""
    line = _first_line(text).lower().rstrip(".")
    if line in ("yes", "no"):
        return line
    if mode == "lenient":
        match = re.search(r"\b(yes|no)\b", str(text).lower())
        return match.group(1) if match else None
    return None


def parse_letter(text: str, mode: ParseMode = "strict") -> str | None:
    """Option letter ``a``-``d`` or ``None``. Strict: the first line is ``b``, ``b)``, ``(b)`` or ``b.``."""
    line = _first_line(text).lower()
    match = re.fullmatch(r"\(?([a-d])[).]?", line)
    if match:
        return match.group(1)
    if mode == "lenient":
        match = re.search(r"(?:^|\W)\(?([a-d])\)", str(text).lower()) or re.search(r"\b([a-d])\b", line)
        return match.group(1) if match else None
    return None


def parse_box(text: str, mode: ParseMode = "strict") -> tuple[float, float, float, float] | None:
    """``(x1, y1, x2, y2)`` from ``[x1 y1, x2 y2]`` or ``None``; corners must be ordered and inside [0, 1]."""
    match = _BOX_STRICT.match(_first_line(text)) if mode == "strict" else _BOX_ANY.search(str(text))
    if match is None:
        return None
    x1, y1, x2, y2 = (float(v) for v in match.groups())
    if mode == "lenient":
        x1, x2, y1, y2 = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
    if not (0.0 <= x1 <= x2 <= 1.0 and 0.0 <= y1 <= y2 <= 1.0):
        return None
    return x1, y1, x2, y2


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (punctuation dropped)."""
    return _TOKEN.findall(str(text).lower())


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu(candidates: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4) -> list[float]:
    """Corpus BLEU-1..``max_n`` (clipped n-gram precision, closest-reference brevity penalty, no smoothing)."""
    matches, totals = [0] * max_n, [0] * max_n
    cand_len = ref_len = 0
    for cand, refs in zip(candidates, references, strict=True):
        c = tokenize(cand)
        r = [tokenize(x) for x in refs]
        cand_len += len(c)
        ref_len += min((abs(len(x) - len(c)), len(x)) for x in r)[1]
        for n in range(1, max_n + 1):
            counts = _ngrams(c, n)
            best: Counter[tuple[str, ...]] = Counter()
            for x in r:
                best |= _ngrams(x, n)
            matches[n - 1] += sum(min(v, best[g]) for g, v in counts.items())
            totals[n - 1] += max(len(c) - n + 1, 0)
    if cand_len == 0:
        return [0.0] * max_n
    bp = 1.0 if cand_len > ref_len else math.exp(1 - ref_len / cand_len)
    scores, log_sum = [], 0.0
    for n in range(max_n):
        if matches[n] == 0 or totals[n] == 0:
            scores.extend([0.0] * (max_n - n))
            break
        log_sum += math.log(matches[n] / totals[n])
        scores.append(bp * math.exp(log_sum / (n + 1)))
    return scores


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(candidates: Sequence[str], references: Sequence[Sequence[str]], beta: float = 1.2) -> float:
    """Mean ROUGE-L F-measure (max precision and max recall over the references, as in pycocoevalcap)."""
    scores = []
    for cand, refs in zip(candidates, references, strict=True):
        c = tokenize(cand)
        precs, recs = [0.0], [0.0]
        for ref in refs:
            r = tokenize(ref)
            lcs = _lcs(c, r)
            precs.append(lcs / len(c) if c else 0.0)
            recs.append(lcs / len(r) if r else 0.0)
        p, r_ = max(precs), max(recs)
        scores.append(((1 + beta**2) * p * r_) / (r_ + beta**2 * p) if p > 0 and r_ > 0 else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def cider(candidates: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4, sigma: float = 6.0) -> float:
    """CIDEr as in pycocoevalcap's ``Cider`` (document frequency over the reference sets of this corpus)."""
    refs_tok = [[tokenize(r) for r in refs] for refs in references]
    df: Counter[tuple[str, ...]] = Counter()
    for refs in refs_tok:
        df.update({g for r in refs for n in range(1, max_n + 1) for g in _ngrams(r, n)})
    log_n = math.log(float(max(len(refs_tok), 1)))

    def vec(tokens: list[str]) -> tuple[list[dict[tuple[str, ...], float]], list[float], int]:
        out, norms = [], []
        for n in range(1, max_n + 1):
            v = {g: tf * (log_n - math.log(max(1.0, df[g]))) for g, tf in _ngrams(tokens, n).items()}
            out.append(v)
            norms.append(math.sqrt(sum(x * x for x in v.values())))
        return out, norms, len(tokens)

    scores = []
    for cand, refs in zip(candidates, refs_tok, strict=True):
        vc, nc, lc = vec(tokenize(cand))
        total = np.zeros(max_n)
        for ref in refs:
            vr, nr, lr = vec(ref)
            for n in range(max_n):
                val = sum(min(x, vr[n].get(g, 0.0)) * vr[n].get(g, 0.0) for g, x in vc[n].items())
                if nc[n] != 0 and nr[n] != 0:
                    val /= nc[n] * nr[n]
                total[n] += val * math.exp(-((lc - lr) ** 2) / (2 * sigma**2))
        scores.append(float(total.mean()) / max(len(refs), 1) * 10.0)
    return float(np.mean(scores)) if scores else 0.0


def java_available() -> bool:
    """Whether a ``java`` executable is on the PATH (METEOR needs one)."""
    return shutil.which("java") is not None


def meteor_scores(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[float, list[float]]:
    """Corpus and per-caption METEOR 1.5 (``-l en -norm``; exact, stem, synonym and paraphrase matches).

    One run of the METEOR 1.5 jar shipped by pycocoevalcap (the COCO caption toolkit); the corpus score
    aggregates the match statistics of all captions, as pycocoevalcap reports it. Texts are tokenised like the
    other caption metrics (lower-cased words) first. Starting the jar takes seconds (it loads its paraphrase table).

    Raises:
        RuntimeError: No Java runtime, or the METEOR process failed.
    """
    if not java_available():
        raise RuntimeError("METEOR needs a Java runtime: no `java` on the PATH (e.g. apt-get install default-jre)")
    from pycocoevalcap.meteor.meteor import Meteor

    if not candidates:
        return 0.0, []
    gts = {i: [" ".join(tokenize(r)) or "." for r in refs] for i, refs in enumerate(references)}
    res = {i: [" ".join(tokenize(c))] for i, c in enumerate(candidates)}
    scorer = Meteor()
    try:
        score, per = scorer.compute_score(gts, res)
    except (ValueError, BrokenPipeError) as exc:
        scorer.meteor_p.kill()
        err = scorer.meteor_p.stderr.read().decode(errors="replace")[-500:] if scorer.meteor_p.stderr else ""
        raise RuntimeError(f"the METEOR 1.5 jar failed ({exc}); its stderr: {err}") from exc
    return float(score), [float(x) for x in per]


def meteor(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus METEOR 1.5 (see :func:`meteor_scores`)."""
    return meteor_scores(candidates, references)[0]


def bert_score(
    candidates: Sequence[str],
    references: Sequence[Sequence[str]],
    model_path: str | Path,
    *,
    num_layers: int | None = None,
    device: str = "auto",
    batch_size: int = 32,
) -> dict[str, float]:
    """Mean BERTScore precision, recall and F1 (no idf, no baseline rescaling) with a local encoder.

    Args:
        candidates: Predicted captions.
        references: Reference captions per candidate (the best-matching reference counts).
        model_path: Local folder of a transformers encoder and its tokenizer (never downloaded). The tokenizer must
            add a start and an end token (BERT/RoBERTa style): torchmetrics drops the first and last token.
        num_layers: Hidden layer whose embeddings are matched (default: the last one).
        device: ``auto`` (CUDA when available) or a torch device string.
        batch_size: Sentences per forward pass.

    Raises:
        FileNotFoundError: ``model_path`` has no ``config.json``.
    """
    from torchmetrics.functional.text.bert import bert_score as tm_bert_score

    path = local_model_folder(model_path, role="BERTScore model", example="roberta-large")
    device = resolve_device(device)
    options: dict[str, Any] = {
        "model_name_or_path": str(path), "num_layers": num_layers, "device": device, "batch_size": batch_size,
        "max_length": 512, "truncation": True,
    }  # fmt: skip
    keys = ("precision", "recall", "f1")
    if all(len(r) == 1 for r in references):
        scores: dict[str, Any] = tm_bert_score(list(candidates), [r[0] for r in references], **options)
        return {k: float(torch.as_tensor(scores[k]).float().mean()) for k in keys}
    # several references: the best one per candidate and metric (one candidate at a time, because torchmetrics'
    # multi-reference path fails on a single candidate)
    best: dict[str, list[float]] = {k: [] for k in keys}
    for cand, refs in zip(candidates, references, strict=True):
        per = tm_bert_score([cand] * len(refs), list(refs), **options)
        for k in keys:
            best[k].append(float(torch.as_tensor(per[k]).max()))
    return {k: float(np.mean(v)) for k, v in best.items()}


def sbert_cosine(
    candidates: Sequence[str],
    references: Sequence[Sequence[str]],
    model_path: str | Path,
    *,
    device: str = "auto",
    batch_size: int = 32,
) -> float:
    """Mean cosine similarity of mean-pooled sentence embeddings (SBERT-style) of caption and best reference.

    Args:
        candidates: Predicted captions.
        references: Reference captions per candidate (the most similar one counts).
        model_path: Local folder of a transformers encoder and its tokenizer (e.g. a sentence-transformers model
            such as all-MiniLM-L6-v2, whose pooling is the attention-masked mean of the last hidden states).
        device: ``auto`` (CUDA when available) or a torch device string.
        batch_size: Sentences per forward pass.

    Raises:
        FileNotFoundError: ``model_path`` has no ``config.json``.
    """
    from transformers import AutoModel, AutoTokenizer

    path = local_model_folder(model_path, role="SBERT model", example="all-MiniLM-L6-v2")
    device = resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model: Any = AutoModel.from_pretrained(path, local_files_only=True)
    model = model.to(device).eval()

    def embed(texts: list[str]) -> torch.Tensor:
        out = []
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start : start + batch_size], padding=True, truncation=True, return_tensors="pt")
            enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            with torch.inference_mode():
                hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1), dim=-1))
        return torch.cat(out).float().cpu()

    if not candidates:
        return 0.0
    cand = embed([str(c) for c in candidates])
    flat = [str(r) for refs in references for r in refs]
    ref = embed(flat)
    scores, k = [], 0
    for i, refs in enumerate(references):
        scores.append(float((ref[k : k + len(refs)] @ cand[i]).max()))
        k += len(refs)
    return float(np.mean(scores))


def evaluate_predictions(
    frame: pd.DataFrame,
    *,
    mode: ParseMode = "strict",
    with_meteor: bool = False,
    bertscore_model: str | Path | None = None,
    bertscore_layers: int | None = None,
    sbert_model: str | Path | None = None,
) -> dict[str, pd.DataFrame]:
    """Score a frame with the release columns ``type``, ``category``, ``output`` and a ``prediction`` column.

    Aggregation is per annotation (the bench split's patches hold 1..67 annotations each).

    Returns:
        ``{"summary": paper-style headline row, "per_category": type/category/n/score/metric,
        "captioning": BLEU-1..4, ROUGE-L, CIDEr, METEOR (``with_meteor``), BERTScore-P/R/F1
        (``bertscore_model``), SBERT cosine (``sbert_model``)}`` (scores in percent except CIDEr).

    Raises:
        KeyError: A required column is missing.
        RuntimeError: ``with_meteor`` without a Java runtime.
        FileNotFoundError: ``bertscore_model`` or ``sbert_model`` is not a local model folder.
    """
    missing = [c for c in ("type", "category", "output", "prediction") if c not in frame.columns]
    if missing:
        raise KeyError(f"predictions lack column(s) {missing}; expected type, category, output, prediction")
    per_cat: list[dict[str, object]] = []
    headline: dict[str, float] = {}
    for kind, parser in (("binary", parse_yes_no), ("mcq", parse_letter)):
        rows = frame.loc[frame["type"] == kind]
        if rows.empty:
            continue
        parsed = [parser(p, mode) for p in rows["prediction"]]
        correct = np.array(
            [p is not None and p == str(o).strip().lower() for p, o in zip(parsed, rows["output"], strict=True)]
        )
        headline[kind] = 100.0 * float(correct.mean())
        for cat, idx in rows.groupby("category").indices.items():
            per_cat.append(
                {"type": kind, "category": cat, "n": len(idx), "metric": "accuracy", "score": 100 * correct[idx].mean()}
            )
    boxes = frame.loc[frame["type"] == "bounding box"]
    if not boxes.empty:
        target = [parse_box(o, "strict") for o in boxes["output"]]
        if any(t is None for t in target):
            bad = boxes["output"].iloc[next(i for i, t in enumerate(target) if t is None)]
            raise ValueError(f"reference box {bad!r} is not of the form [x1 y1, x2 y2]")
        pred = [parse_box(p, mode) or (0.0, 0.0, 0.0, 0.0) for p in boxes["prediction"]]
        for cat, idx in [("all", np.arange(len(boxes))), *boxes.groupby("category").indices.items()]:
            metric = BoxAccuracy(validate_args=False)
            metric.update(torch.tensor([pred[i] for i in idx]), torch.tensor([target[i] for i in idx]))
            result = {k: 100.0 * float(v) for k, v in metric.compute().items()}
            if cat == "all":
                headline["ref_miou"] = result["miou"]
                headline["ref_acc@0.5"] = result["acc@0.5"]
                continue
            for name, value in result.items():
                per_cat.append({"type": "bounding box", "category": cat, "n": len(idx), "metric": name, "score": value})
    captions = frame.loc[frame["type"] == "captioning"]
    cap_table = pd.DataFrame()
    if not captions.empty:
        cands = [_first_paragraph(p) for p in captions["prediction"]]
        refs = [[str(o)] for o in captions["output"]]
        b = bleu(cands, refs)
        cap = {f"BLEU-{i + 1}": 100 * v for i, v in enumerate(b)}
        cap["ROUGE-L"] = 100 * rouge_l(cands, refs)
        cap["CIDEr"] = cider(cands, refs)
        if with_meteor:
            cap["METEOR"] = 100 * meteor(cands, refs)
        if bertscore_model is not None:
            bs = bert_score(cands, refs, bertscore_model, num_layers=bertscore_layers)
            cap.update({f"BERTScore-{k[0].upper() if k != 'f1' else 'F1'}": 100 * v for k, v in bs.items()})
        if sbert_model is not None:
            cap["SBERT-cos"] = 100 * sbert_cosine(cands, refs, sbert_model)
        headline["caption_bleu4"] = cap["BLEU-4"]
        cap_table = pd.DataFrame([cap])
    return {
        "summary": pd.DataFrame([headline]),
        "per_category": pd.DataFrame(per_cat, columns=["type", "category", "n", "metric", "score"]),
        "captioning": cap_table,
    }


def _first_paragraph(text: object) -> str:
    return str(text).strip().split("\n\n")[0] if text is not None else ""
