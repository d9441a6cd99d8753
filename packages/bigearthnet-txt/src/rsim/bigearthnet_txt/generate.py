"""Annotation generators: template captions, binary and multiple-choice VQA, referring boxes and points.

Rows follow the 13-column schema of the released ``BigEarthNet.txt.parquet``. Everything random is drawn from
``numpy.random.default_rng([seed, crc32(patch_id)])``, so a patch's rows depend only on the seed and the patch.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from rsim.bigearthnet_txt.attributes import DIRECTIONS, AttributeConfig, ClassAttributes, Instance, PatchAttributes
from rsim.bigearthnet_txt.context import CLIMATE_NAMES, COUNTRIES, EUROPEAN_ZONES, SEASONS, hierarchy
from rsim.core.data.nomenclature import BEN19_LABELS

COLUMNS: tuple[str, ...] = (
    "ID", "s1_name", "patch_id", "input", "output", "type", "category", "split",
    "latitude", "longitude", "country", "season", "climate_zone",
)  # fmt: skip
LETTERS = "abcd"
BoxAxis = Literal["xy", "yx"]


@dataclass(frozen=True)
class GeneratorConfig:
    """Options of the generators (README "Assumptions").

    Attributes:
        attributes: Attribute-extraction options.
        box_axis: ``xy`` = (x = column, y = row) [third-party evidence], ``yx`` swaps; origin top-left, divided by
            the patch size, box corners on pixel edges, points on pixel centres.
        patch_px: Normalisation size (120 px).
        decimals: Decimals of coordinates (2 in the release).
        ref_min_share: Smallest referable instance share of the image [third-party: 1 %].
        ref_max_share: Largest referable instance share [third-party: 50 %].
        ref_min_fill: Smallest instance/box fill ratio [third-party: 40 %].
        distractor_spacing: Relative spacing of area distractors (0.5 = 50 % apart) [assumption].
        binary_per_category: Binary questions per category and patch [assumption].
        mcq_per_category: MCQ questions per category and patch [assumption].
        climate_names: Write ``Cfb (temperate oceanic)`` instead of the bare code [assumption].
    """

    attributes: AttributeConfig = field(default_factory=AttributeConfig)
    box_axis: BoxAxis = "xy"
    patch_px: int = 120
    decimals: int = 2
    ref_min_share: float = 0.01
    ref_max_share: float = 0.50
    ref_min_fill: float = 0.40
    distractor_spacing: float = 0.5
    binary_per_category: int = 2
    mcq_per_category: int = 1
    climate_names: bool = False

    def __post_init__(self) -> None:
        if self.box_axis not in ("xy", "yx"):
            raise ValueError(f"box_axis must be 'xy' or 'yx', got {self.box_axis!r}")
        if self.distractor_spacing <= 0:
            raise ValueError("distractor_spacing must be positive")


@dataclass(frozen=True)
class PatchContext:
    """Metadata of one patch (from ``metadata.parquet``, the patch name and the georeferencing)."""

    patch_id: str
    s1_name: str
    split: str
    country: str
    season: str
    latitude: float
    longitude: float
    climate_zone: str


# ----------------------------------------------------------------------------------------------- formatting
def fmt_area(m2: int) -> str:
    """``12,000 m²``; areas that round to zero read ``less than 1,000 m²``."""
    return f"{m2:,} m²" if m2 > 0 else "less than 1,000 m²"


def fmt_coord(value: float, decimals: int = 2) -> str:
    """Coordinate as in the release: up to ``decimals`` decimals, at least one (``0.0``, ``0.64``)."""
    return repr(round(float(value) + 0.0, decimals))


def box_text(instance: Instance, config: GeneratorConfig) -> str:
    """``[x1 y1, x2 y2]`` of an instance's enclosing box (pixel edges / patch size)."""
    r0, c0, r1, c1 = instance.bbox
    n, d = config.patch_px, config.decimals
    a, b = ((c0, r0), (c1, r1)) if config.box_axis == "xy" else ((r0, c0), (r1, c1))
    return f"[{fmt_coord(a[0] / n, d)} {fmt_coord(a[1] / n, d)}, {fmt_coord(b[0] / n, d)} {fmt_coord(b[1] / n, d)}]"


def point_text(instance: Instance, config: GeneratorConfig) -> str:
    """``<point>(x, y)</point>`` at the centre of an interior pixel."""
    r, c = instance.interior
    n, d = config.patch_px, config.decimals
    first, second = ((c + 0.5) / n, (r + 0.5) / n) if config.box_axis == "xy" else ((r + 0.5) / n, (c + 0.5) / n)
    return f"<point>({fmt_coord(first, d)}, {fmt_coord(second, d)})</point>"


def climate_text(code: str, config: GeneratorConfig) -> str:
    """The climate zone as written in the text."""
    if config.climate_names and code in CLIMATE_NAMES:
        return f"{code} ({CLIMATE_NAMES[code]})"
    return code


def regions_text(n: int) -> str:
    """``one region`` / ``3 separate regions``."""
    return "one contiguous region" if n == 1 else f"{n} separate regions"


# ----------------------------------------------------------------------------------------------- helpers
def patch_rng(seed: int, patch_id: str) -> np.random.Generator:
    """The generator of one patch: independent of processing order and worker."""
    return np.random.default_rng([seed, zlib.crc32(patch_id.encode())])


def near_miss_absent(name: str, present: Sequence[str], rng: np.random.Generator, k: int = 1) -> list[str]:
    """``k`` absent classes, most related to ``name`` in the CLC hierarchy first (ties broken at random)."""
    h = hierarchy()
    absent = [c for c in BEN19_LABELS if c not in present]
    keys = rng.random(len(absent))
    order = sorted(range(len(absent)), key=lambda i: (-h.relatedness(name, absent[i]), keys[i]))
    return [absent[i] for i in order[:k]]


def mcq(
    question: str, correct: str, distractors: Sequence[str], letter: int, rng: np.random.Generator
) -> tuple[str, str]:
    """Inline ``a) … d)`` options with ``correct`` at position ``letter``; returns (input, output letter)."""
    if len(set(distractors)) != 3 or correct in distractors:
        raise ValueError(f"MCQ needs 3 distinct distractors different from {correct!r}, got {list(distractors)}")
    others = [distractors[i] for i in rng.permutation(3)]
    options = [*others[:letter], correct, *others[letter:]]
    text = ", ".join(f"{LETTERS[i]}) {o}" for i, o in enumerate(options))
    return f"{question} {text}", LETTERS[letter]


def _count_distractors(n: int, rng: np.random.Generator) -> list[str]:
    candidates = [v for v in range(max(1, n - 3), n + 5) if v != n]
    keys = rng.random(len(candidates))
    ranked = sorted(candidates, key=lambda v: (abs(v - n), keys[candidates.index(v)]))
    return [str(v) for v in ranked[:3]]


def _wrong_count(n: int, rng: np.random.Generator) -> int:
    options = [v for v in (n - 1, n + 1, n + 2) if v >= 1]
    return int(rng.choice(options))


def _area_values(m2: int, spacing: float, step: int) -> list[int]:
    """Quantities spaced by ``spacing`` (relative) around ``m2``, distinct after rounding to ``step``."""
    out: list[int] = []
    base = max(m2, step)
    for factor in (1 + spacing, 1 - spacing / (1 + spacing), (1 + spacing) ** 2, 1 / (1 + spacing) ** 2, 3.0, 4.0):
        value = int(round(base * factor / step) * step)
        if value > 0 and value != m2 and value not in out:
            out.append(value)
    return out


# ----------------------------------------------------------------------------------------------- captions
_OPENINGS = (
    "This image covers a 1.2 km by 1.2 km area in {country}, acquired in {season}, in the {climate} "
    "Köppen-Geiger climate zone.",
    "The scene, located in {country}, was captured in {season} and lies in a region of {climate} climate.",
    "Captured during {season} in {country}, this patch of land falls within the {climate} climate zone.",
)
_PRIMARY = (
    "{name} dominates the scene, covering about {pct}% of the image ({area}) in {regions}.",
    "The largest part of the image, roughly {pct}% or {area}, is {name}, forming {regions}.",
)
#: Further classes above the primary threshold: they are large but not the largest.
_PRIMARY_OTHER = (
    "{name} also covers a large part of the image, about {pct}% ({area}), in {regions}.",
    "A further {pct}% of the image ({area}) is {name}, forming {regions}.",
)
_SECONDARY = (
    "{name} covers a moderate share of about {pct}% ({area}) spread over {regions}.",
    "There is also {name} on about {pct}% of the area ({area}), in {regions}.",
)
_MARGINAL = (
    "A small amount of {name} appears as well, about {area} in {regions}.",
    "{name} is marginal, with only {area} in {regions}.",
)
_ADJ = ("{a} borders {b}.", "{a} lies next to {b}.")
_REL = ("The largest region of {a} is located to the {d} of the largest region of {b}.",)


def caption(attrs: PatchAttributes, ctx: PatchContext, config: GeneratorConfig, rng: np.random.Generator) -> str:
    """A template caption stating every class fact, some relations and the environmental context."""
    climate = climate_text(ctx.climate_zone, config)
    parts = [_OPENINGS[rng.integers(len(_OPENINGS))].format(country=ctx.country, season=ctx.season, climate=climate)]
    templates = {"primary": _PRIMARY, "secondary": _SECONDARY, "marginal": _MARGINAL}
    for rank, c in enumerate(attrs.classes):
        options = _PRIMARY_OTHER if rank > 0 and c.tier == "primary" else templates[c.tier]
        parts.append(
            options[rng.integers(len(options))].format(
                name=c.name,
                pct=max(1, round(100 * c.share)),
                area=fmt_area(c.area_m2),
                regions=regions_text(c.n_regions),
            )
        )
    pairs = sorted(tuple(sorted(p)) for p in attrs.adjacency)
    for a, b in pairs[:3]:
        parts.append(_ADJ[rng.integers(len(_ADJ))].format(a=a, b=b))
    if len(attrs.classes) >= 2:
        second, first = attrs.classes[1], attrs.classes[0]
        d = _direction(second.largest, first.largest)
        if d is not None:
            parts.append(_REL[0].format(a=second.name, b=first.name, d=d))
    text = " ".join(parts)
    return text[0].upper() + text[1:]


def _direction(a: Instance, b: Instance, min_distance: float = 1.0) -> str | None:
    from rsim.bigearthnet_txt.attributes import direction

    if np.hypot(a.centroid[0] - b.centroid[0], a.centroid[1] - b.centroid[1]) < min_distance:
        return None
    return direction(b.centroid, a.centroid)


# ----------------------------------------------------------------------------------------------- VQA
def binary_questions(
    attrs: PatchAttributes, config: GeneratorConfig, rng: np.random.Generator
) -> list[tuple[str, str, str]]:
    """``(input, output, category)`` yes/no questions; ``no`` answers are near misses."""
    rows: list[tuple[str, str, str]] = []
    present = [c.name for c in attrs.classes]
    step = config.attributes.area_rounding_m2
    for _ in range(config.binary_per_category):
        c = attrs.classes[rng.integers(len(attrs.classes))]
        # presence: yes = a present class, no = the most related absent class
        if rng.random() < 0.5:
            rows.append((f"Is there any {c.name} in the image?", "yes", "presence"))
        else:
            miss = near_miss_absent(c.name, present, rng)[0]
            rows.append((f"Is there any {miss} in the image?", "no", "presence"))
        # counting: no = right class, wrong number of regions
        n = c.n_regions if rng.random() < 0.5 else _wrong_count(c.n_regions, rng)
        rows.append(
            (f"Does {c.name} form {regions_text(n)} in the image?", "yes" if n == c.n_regions else "no", "counting")
        )
        # area: no = right class, wrong area
        if rng.random() < 0.5:
            rows.append((f"Does {c.name} cover about {fmt_area(c.area_m2)}?", "yes", "area"))
        else:
            wrong = _area_values(c.area_m2, config.distractor_spacing, step)[rng.integers(2)]
            rows.append((f"Does {c.name} cover about {fmt_area(wrong)}?", "no", "area"))
        # adjacency: yes = touching pair, no = present but not touching, else an absent related class
        neighbours = attrs.neighbours(c.name)
        strangers = [p for p in present if p != c.name and not attrs.adjacent(c.name, p)]
        if neighbours and (rng.random() < 0.5 or len(present) < 2):
            b = neighbours[rng.integers(len(neighbours))]
            rows.append((f"Is {c.name} adjacent to {b}?", "yes", "adjacency"))
        else:
            b = strangers[rng.integers(len(strangers))] if strangers else near_miss_absent(c.name, present, rng)[0]
            rows.append((f"Is {c.name} adjacent to {b}?", "no", "adjacency"))
    seen: set[str] = set()
    unique = [r for r in rows if not (r[0] in seen or seen.add(r[0]))]  # type: ignore[func-returns-value]
    return unique


def mcq_questions(
    attrs: PatchAttributes, ctx: PatchContext, config: GeneratorConfig, rng: np.random.Generator, letters: list[int]
) -> list[tuple[str, str, str]]:
    """``(input, output letter, category)`` for the eight MCQ categories; ``letters`` supplies balanced positions."""
    rows: list[tuple[str, str, str]] = []
    present = [c.name for c in attrs.classes]
    step = config.attributes.area_rounding_m2

    def add(question: str, correct: str, distractors: Sequence[str], category: str) -> None:
        if not letters:
            letters.extend(int(i) for i in rng.permutation(4))
        rows.append((*mcq(question, correct, distractors, letters.pop(), rng), category))

    for _ in range(config.mcq_per_category):
        c: ClassAttributes = attrs.classes[rng.integers(len(attrs.classes))]
        add(
            "Which of the following land-cover classes is present in the image?",
            c.name,
            near_miss_absent(c.name, present, rng, 3),
            "presence",
        )
        add(
            f"How many separate regions of {c.name} are in the image?",
            str(c.n_regions),
            _count_distractors(c.n_regions, rng),
            "counting",
        )
        add(
            f"What is the total area covered by {c.name}?",
            fmt_area(c.area_m2),
            [fmt_area(v) for v in _area_values(c.area_m2, config.distractor_spacing, step)[:3]],
            "area",
        )
        touching = [(a, attrs.neighbours(a)) for a in present if attrs.neighbours(a)]
        if touching:
            a, neighbours = touching[rng.integers(len(touching))]
            b = neighbours[rng.integers(len(neighbours))]
            others = [p for p in present if p not in (a, b) and not attrs.adjacent(a, p)]
            others += near_miss_absent(b, present, rng, 3)
            add(f"Which of the following classes is adjacent to {a}?", b, others[:3], "adjacency")
        if len(attrs.classes) >= 2:
            i, j = rng.choice(len(attrs.classes), size=2, replace=False)
            a_cls, b_cls = attrs.classes[int(i)], attrs.classes[int(j)]
            d = _direction(a_cls.largest, b_cls.largest)
            if d is not None:
                k = DIRECTIONS.index(d)
                near = [DIRECTIONS[(k + s) % 8] for s in (4, 2, -2, 1, -1, 3, -3)]
                pick = [near[0]] + [near[int(t) + 1] for t in rng.choice(6, size=2, replace=False)]
                add(
                    f"Where is the largest region of {a_cls.name} relative to the largest region of {b_cls.name}?",
                    d,
                    pick,
                    "relative position",
                )
    countries = [x for x in COUNTRIES if x != ctx.country]
    add(
        "In which country was this image acquired?",
        ctx.country,
        [countries[int(i)] for i in rng.choice(len(countries), 3, replace=False)],
        "country",
    )
    add("In which season was this image acquired?", ctx.season, [s for s in SEASONS if s != ctx.season], "season")
    if ctx.climate_zone:
        zones = [z for z in EUROPEAN_ZONES if z != ctx.climate_zone]
        add(
            "Which Köppen-Geiger climate zone does this area belong to?",
            climate_text(ctx.climate_zone, config),
            [climate_text(zones[int(i)], config) for i in rng.choice(len(zones), 3, replace=False)],
            "climate zone",
        )
    return rows


def referring(attrs: PatchAttributes, config: GeneratorConfig) -> list[tuple[str, str, str]]:
    """Box prompts (``reference``) and point prompts (``point``) for each class's largest qualifying instance."""
    rows: list[tuple[str, str, str]] = []
    for c in attrs.classes:
        inst = c.largest
        if not (config.ref_min_share <= inst.share <= config.ref_max_share and inst.fill >= config.ref_min_fill):
            continue
        expr = f"the largest region of {c.name}" if c.n_regions > 1 else f"the region of {c.name}"
        box = box_text(inst, config)
        rows.append((f"Give the bounding box of <ref>{expr}</ref>.", box, "reference"))
        rows.append((f"Give the bounding box of the region containing {point_text(inst, config)}.", box, "point"))
    return rows


def generate_patch(
    attrs: PatchAttributes, ctx: PatchContext, config: GeneratorConfig, seed: int
) -> list[dict[str, Any]]:
    """All annotation rows of one patch in the release schema (empty when the map has no labelled class)."""
    if not attrs.classes:
        return []
    rng = patch_rng(seed, ctx.patch_id)
    items = [("Describe the image in detail.", caption(attrs, ctx, config, rng), "captioning", "None")]
    items += [(q, a, "binary", cat) for q, a, cat in binary_questions(attrs, config, rng)]
    items += [(q, a, "mcq", cat) for q, a, cat in mcq_questions(attrs, ctx, config, rng, [])]
    items += [(q, a, "bounding box", cat) for q, a, cat in referring(attrs, config)]
    meta = {
        "s1_name": ctx.s1_name,
        "patch_id": ctx.patch_id,
        "split": ctx.split,
        "latitude": ctx.latitude,
        "longitude": ctx.longitude,
        "country": ctx.country,
        "season": ctx.season,
        "climate_zone": climate_text(ctx.climate_zone, config),
    }
    return [
        {"ID": f"{ctx.patch_id}-{k:03d}", "input": q, "output": a, "type": t, "category": cat, **meta}
        for k, (q, a, t, cat) in enumerate(items)
    ]
