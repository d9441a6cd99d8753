r"""Terra-CoT L1 templates and stage-1 referring segmentation from label maps, in the released JSON format.

A record is ``{"id", "image", "masks": [[RLE, ...] per [SEG]], "conversations": [{"from": "human", "value":
"<image>\\n..."}, {"from": "gpt", "value": "<think>... [SEG] ...</think><answer>...</answer>"}]}`` with COCO RLE
masks; the k-th mask group belongs to the k-th ``[SEG]`` of the gpt turns (several RLEs in a group are united).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rsim.core.data.nomenclature import label_names
from rsim.core.errors import DataFormatError, MissingKeyError
from rsim.core.io import atomic_path
from rsim.terrascope.data.bench import _seed
from rsim.terrascope.data.masks import decode_rle, encode_rle
from rsim.terrascope.data.rules import borders, class_masks, class_stats, min_distance_px

SEG = "[SEG]"
COT_TEMPLATES = ("existence", "counting", "localisation", "area", "percentage", "boundary", "distance")

__all__ = [
    "COT_TEMPLATES",
    "SEG",
    "CotConfig",
    "CotRecord",
    "cardinal_phrase",
    "cot_records_from_label_map",
    "load_cot",
    "refseg_records_from_label_map",
    "write_cot",
]


@dataclass
class CotRecord:
    """One conversation with one mask group per ``[SEG]``; ``image`` is a file name (or one per frame)."""

    id: str
    image: str | list[str]
    masks: list[list[dict[str, Any]]]
    conversations: list[dict[str, str]]
    template: str = ""

    def to_json(self) -> dict[str, Any]:
        """The released record layout (``template`` is kept as an extra key when set)."""
        out: dict[str, Any] = {"id": self.id, "image": self.image, "masks": self.masks}
        out["conversations"] = self.conversations
        if self.template:
            out["template"] = self.template
        return out

    def decoded_masks(self, *, source: str = "record") -> list[np.ndarray]:
        """One bool mask per ``[SEG]`` (the union of its RLEs)."""
        out = []
        for k, group in enumerate(self.masks):
            parts = [decode_rle(r, source=f"{source} masks[{k}]") for r in group]
            out.append(np.logical_or.reduce(parts) if parts else np.zeros((1, 1), bool))
        return out

    @property
    def question(self) -> str:
        """First human turn."""
        return self.conversations[0]["value"]

    @property
    def response(self) -> str:
        """First gpt turn."""
        return self.conversations[1]["value"]


@dataclass(frozen=True)
class CotConfig:
    """Templates and thresholds of the L1 generator.

    Attributes:
        templates: Which L1 templates to emit.
        gsd_m: Pixel size (m).
        min_coverage_pct: Classes under this coverage get no questions [assumption].
        distance_opening: Opening before the distance transform (as in the bench).
        connectivity: 1 = 4-, 2 = 8-connected components for counting [assumption].
        max_per_template: Cap per template and image (``None`` = all) [assumption].
        absent_existence: Also ask about one absent class (answer "No", no ``[SEG]``) [assumption].
        refseg_instruction: Stage-1 instruction [paper]; ``{cls}`` is replaced by the class name.
        refseg_answer: Stage-1 gpt turn [assumption] (LISA/Sa2VA style).
        seed: Seed for sampling.
    """

    templates: tuple[str, ...] = COT_TEMPLATES
    gsd_m: float = 10.0
    min_coverage_pct: float = 1.0
    distance_opening: int = 3
    connectivity: int = 1
    max_per_template: int | None = 2
    absent_existence: bool = True
    refseg_instruction: str = "Please segment the {cls}."
    refseg_answer: str = "Sure, [SEG]."
    seed: int = 0


def cardinal_phrase(mask: np.ndarray) -> str:
    """Where a mask's centroid lies on a 3×3 grid: ``"north-western part"``, ``"centre"``, ``"southern part"``..."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    row = min(int(3 * ys.mean() / h), 2)
    col = min(int(3 * xs.mean() / w), 2)
    ns = ("north", "", "south")[row]
    ew = ("west", "", "east")[col]
    if not ns and not ew:
        return "centre"
    if ns and ew:
        return f"{ns}-{ew}ern part"
    return f"{ns or ew}ern part"


def _lc(name: str) -> str:
    return name[0].lower() + name[1:]


def _conv(question: str, think: str, answer: str) -> list[dict[str, str]]:
    return [
        {"from": "human", "value": f"<image>\n{question}"},
        {"from": "gpt", "value": f"<think>{think}</think><answer>{answer}</answer>"},
    ]


def cot_records_from_label_map(
    reference_map: np.ndarray, *, image: str, record_id: str, config: CotConfig | None = None
) -> list[CotRecord]:
    """Terra-CoT L1 records (answers computed from the masks) of one CLC reference map.

    Args:
        reference_map: (H, W) CLC Level-3 codes, nodata 0.
        image: Image file name stored in the records.
        record_id: Prefix of the record ids (the patch id).
        config: Templates and thresholds.
    """
    cfg = config or CotConfig()
    unknown = [t for t in cfg.templates if t not in COT_TEMPLATES]
    if unknown:
        raise ValueError(f"unknown Terra-CoT template(s) {unknown}; expected a subset of {COT_TEMPLATES}")
    masks = class_masks(reference_map, source=f"reference map of {record_id}")
    stats = [
        s
        for s in class_stats(masks, gsd_m=cfg.gsd_m, connectivity=cfg.connectivity)
        if s.coverage_pct >= cfg.min_coverage_pct
    ]
    rng = np.random.default_rng(_seed(cfg.seed, record_id, "cot"))
    per: dict[str, list[tuple[str, str, str, list[np.ndarray]]]] = {t: [] for t in COT_TEMPLATES}

    def seg(s_name: str) -> str:
        return f"I segment the {_lc(s_name)}: {SEG}"

    for s in stats:
        m, c = masks[s.name], _lc(s.name)
        cover = f"The mask covers about {s.coverage_pct:.1f}% of the image."
        per["existence"].append(
            (f"Is there any {c} in this image?", f"{seg(s.name)} {cover} So {c} is present.", "Yes", [m])
        )
        noun = "region" if s.components == 1 else "regions"
        per["counting"].append(
            (
                f"How many separate regions of {c} are there?",
                f"{seg(s.name)} The mask splits into {s.components} connected {noun}.",
                str(s.components),
                [m],
            )
        )
        where = cardinal_phrase(m)
        per["localisation"].append(
            (
                f"Where is the {c} located in the image?",
                f"{seg(s.name)} Its centre of mass lies in the {where} of the image.",
                f"In the {where} of the image.",
                [m],
            )
        )
        ha = s.area_m2 / 1e4
        per["area"].append(
            (
                f"What area does {c} cover? Each pixel is {cfg.gsd_m:g} m × {cfg.gsd_m:g} m.",
                f"{seg(s.name)} The mask holds {s.pixels} pixels of {cfg.gsd_m**2:g} m², i.e. {s.area_m2:.0f} m².",
                f"About {ha:.2f} ha ({s.area_m2:.0f} m²).",
                [m],
            )
        )
        per["percentage"].append(
            (
                f"What percentage of the image is covered by {c}?",
                f"{seg(s.name)} {cover}",
                f"{s.coverage_pct:.1f}%",
                [m],
            )
        )
    for i, a in enumerate(stats):
        for b in stats[i + 1 :]:
            ma, mb = masks[a.name], masks[b.name]
            yes = borders(ma, mb)
            per["boundary"].append(
                (
                    f"Does {_lc(a.name)} border {_lc(b.name)}?",
                    f"{seg(a.name)} {seg(b.name)} The dilated first mask {'touches' if yes else 'does not touch'} "
                    "the second one.",
                    "Yes" if yes else "No",
                    [ma, mb],
                )
            )
            d = min_distance_px(ma, mb, opening=cfg.distance_opening)
            if d is not None and d > 0:
                per["distance"].append(
                    (
                        f"What is the minimum distance between {_lc(a.name)} and {_lc(b.name)}?",
                        f"{seg(a.name)} {seg(b.name)} The closest pixels are {d:.1f} pixels apart, "
                        f"{d * cfg.gsd_m:.0f} m at {cfg.gsd_m:g} m per pixel.",
                        f"About {d * cfg.gsd_m:.0f} m.",
                        [ma, mb],
                    )
                )
    if cfg.absent_existence:
        absent = [n for n in label_names("clc") if n not in masks]
        if absent:
            name = absent[int(rng.integers(len(absent)))]
            per["existence"].append(
                (
                    f"Is there any {_lc(name)} in this image?",
                    f"I look for {_lc(name)} and find no region of it.",
                    "No",
                    [],
                )
            )
    records: list[CotRecord] = []
    for template in cfg.templates:
        entries = per[template]
        if cfg.max_per_template is not None and len(entries) > cfg.max_per_template:
            keep = sorted(rng.choice(len(entries), size=cfg.max_per_template, replace=False).tolist())
            entries = [entries[k] for k in keep]
        for k, (q, think, ans, ms) in enumerate(entries):
            records.append(
                CotRecord(
                    f"{record_id}_{template}_{k}", image, [[encode_rle(x)] for x in ms], _conv(q, think, ans), template
                )
            )
    return records


def refseg_records_from_label_map(
    reference_map: np.ndarray, *, image: str, record_id: str, config: CotConfig | None = None
) -> list[CotRecord]:
    """Stage-1 referring segmentation: one "Please segment the [class]" record per class present."""
    cfg = config or CotConfig()
    masks = class_masks(reference_map, source=f"reference map of {record_id}")
    out = []
    for k, (name, m) in enumerate(masks.items()):
        conv = [
            {"from": "human", "value": "<image>\n" + cfg.refseg_instruction.format(cls=_lc(name))},
            {"from": "gpt", "value": cfg.refseg_answer},
        ]
        out.append(CotRecord(f"{record_id}_refseg_{k}", image, [[encode_rle(m)]], conv, "refseg"))
    return out


def write_cot(records: Sequence[CotRecord], path: str | os.PathLike[str]) -> Path:
    """Write records as a JSON list (released layout), atomically."""
    out = Path(path)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps([r.to_json() for r in records]))
    return out


def load_cot(path: str | os.PathLike[str], *, check_masks: bool = True) -> list[CotRecord]:
    """Read a Terra-CoT JSON file (a list of records; a JSON-lines file is accepted too).

    Raises:
        FileNotFoundError: The file is missing.
        DataFormatError: Not JSON, or a record has bad conversations or a mask count that differs from its
            ``[SEG]`` count, or an undecodable RLE (with ``check_masks``).
        MissingKeyError: A record lacks ``image``, ``conversations`` or ``masks`` where it has ``[SEG]``.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"Terra-CoT file {p} is missing")
    text = p.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{p} is neither a JSON list nor JSON lines ({exc})") from exc
    if not isinstance(data, list):
        raise DataFormatError(f"{p}: expected a JSON list of records, got {type(data).__name__}")
    records = []
    for i, raw in enumerate(data):
        src = f"{p} record {i}"
        if not isinstance(raw, dict):
            raise DataFormatError(f"{src}: expected an object, got {type(raw).__name__}")
        for key in ("image", "conversations"):
            if key not in raw:
                raise MissingKeyError(f"{src}: field {key!r} is missing")
        conv = raw["conversations"]
        if not isinstance(conv, list) or len(conv) < 2:
            raise DataFormatError(f"{src}: 'conversations' must be a list of at least 2 turns")
        for k, turn in enumerate(conv):
            if not isinstance(turn, dict) or turn.get("from") not in ("human", "gpt") or "value" not in turn:
                raise DataFormatError(f"{src}: conversations[{k}] must be {{'from': human|gpt, 'value': str}}")
        n_seg = sum(t["value"].count(SEG) for t in conv if t["from"] == "gpt")
        masks = raw.get("masks", [])
        if n_seg and "masks" not in raw:
            raise MissingKeyError(f"{src}: {n_seg} [SEG] token(s) but field 'masks' is missing")
        if not isinstance(masks, list):
            raise DataFormatError(f"{src}: 'masks' must be a list")
        masks = [m if isinstance(m, list) else [m] for m in masks]
        if len(masks) != n_seg:
            raise DataFormatError(f"{src}: {len(masks)} mask group(s) for {n_seg} [SEG] token(s); expected one each")
        rec = CotRecord(str(raw.get("id", i)), raw["image"], masks, conv, str(raw.get("template", "")))
        if check_masks:
            rec.decoded_masks(source=src)
        records.append(rec)
    return records
