import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from rsim.bigearthnet_txt.attributes import extract_attributes
from rsim.bigearthnet_txt.context import centre_lat_lon, hierarchy, season_from_name
from rsim.bigearthnet_txt.generate import COLUMNS, GeneratorConfig, PatchContext, generate_patch
from rsim.core.data import BEN19_LABELS, BigEarthNetV2Tree
from rsim.core.errors import DataFormatError

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "benv2"
REAL = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57"


def _ctx(patch_id: str = "P_20171203T101031_X_00_00") -> PatchContext:
    return PatchContext(patch_id, "S1", "train", "Austria", "winter", 47.5, 13.0, "Dfb")


def _random_map(rng: np.random.Generator) -> np.ndarray:
    codes = np.array([211, 231, 311, 312, 313, 512, 112, 242])
    blocks = rng.choice(codes, size=(6, 6))
    return np.kron(blocks, np.ones((20, 20), dtype=np.uint16)).astype(np.uint16)


def test_schema_and_determinism() -> None:
    attrs = extract_attributes(_random_map(np.random.default_rng(1)))
    rows = generate_patch(attrs, _ctx(), GeneratorConfig(), seed=3)
    assert rows == generate_patch(attrs, _ctx(), GeneratorConfig(), seed=3)
    assert rows != generate_patch(attrs, _ctx(), GeneratorConfig(), seed=4)
    assert all(set(r) == set(COLUMNS) for r in rows)
    assert len({r["ID"] for r in rows}) == len(rows)
    types = Counter(r["type"] for r in rows)
    assert types["captioning"] == 1 and types["binary"] > 0 and types["mcq"] > 0
    assert {r["category"] for r in rows if r["type"] == "captioning"} == {"None"}
    assert all(r["output"] in ("yes", "no") for r in rows if r["type"] == "binary")


def test_answers_are_true_and_negatives_are_near_misses() -> None:
    rng = np.random.default_rng(0)
    h = hierarchy()
    letters: Counter[str] = Counter()
    answers: Counter[str] = Counter()
    for k in range(40):
        attrs = extract_attributes(_random_map(rng))
        by = attrs.by_name()
        rows = generate_patch(attrs, _ctx(f"P_20170613T101031_X_{k:02d}_00"), GeneratorConfig(), seed=0)
        for r in rows:
            q, a = r["input"], r["output"]
            if r["type"] == "binary":
                answers[a] += 1
            if r["type"] == "binary" and r["category"] == "presence":
                name = re.match(r"Is there any (.+) in the image\?", q).group(1)
                assert (name in by) == (a == "yes")
                if a == "no":  # the absent class most related to some present class
                    absent = [c for c in BEN19_LABELS if c not in by]
                    assert any(h.relatedness(name, p) == max(h.relatedness(x, p) for x in absent) for p in by)
            elif r["type"] == "binary" and r["category"] == "adjacency":
                x, y = re.match(r"Is (.+) adjacent to (.+)\?", q).groups()
                assert x in by and attrs.adjacent(x, y) == (a == "yes")
            elif r["type"] == "binary" and r["category"] == "counting":
                name = re.match(r"Does (.+) form", q).group(1)
                assert name in by  # wrong quantity of a present class, never an absent class
            elif r["type"] == "mcq":
                letters[a] += 1
                options = dict(re.findall(r"([a-d])\) (.+?)(?=, [a-d]\) |$)", q))
                assert len(options) == 4 and a in options
                if r["category"] == "presence":
                    assert options[a] in by and sum(o in by for o in options.values()) == 1
                if r["category"] == "season":
                    assert options[a] == "winter"
    total = sum(letters.values())
    assert all(abs(letters[x] / total - 0.25) < 0.05 for x in "abcd"), letters
    assert abs(answers["yes"] / sum(answers.values()) - 0.5) < 0.1, answers


def test_referring_filter_and_axis_switch() -> None:
    ref = np.full((120, 120), 311, dtype=np.uint16)
    ref[0:12, 60:120] = 211  # 5 % of the image, full box -> referable
    ref[100:101, 0:10] = 512  # 0.07 % -> too small
    attrs = extract_attributes(ref)
    rows = [r for r in generate_patch(attrs, _ctx(), GeneratorConfig(), 0) if r["type"] == "bounding box"]
    assert {(r["category"], r["output"]) for r in rows} == {
        ("reference", "[0.5 0.0, 1.0 0.1]"),
        ("point", "[0.5 0.0, 1.0 0.1]"),
    }
    point = next(r["input"] for r in rows if r["category"] == "point")
    assert "<point>(0.75, 0.05)</point>" in point
    yx = [r for r in generate_patch(attrs, _ctx(), GeneratorConfig(box_axis="yx"), 0) if r["type"] == "bounding box"]
    assert yx[0]["output"] == "[0.0 0.5, 0.1 1.0]"
    with pytest.raises(ValueError, match="box_axis"):
        GeneratorConfig(box_axis="xz")  # type: ignore[arg-type]


def test_season_rule() -> None:
    assert season_from_name(REAL) == "summer"
    assert season_from_name("S2B_MSIL2A_20171201T101031_N9999_R022_T33UUP_1_2") == "winter"
    assert season_from_name("S1A_IW_GRDH_1SDV_20180315T165043_33UUP_1_2") == "spring"
    with pytest.raises(DataFormatError, match="no acquisition date"):
        season_from_name("patch_without_date")


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared sample data absent")
def test_real_patch_centre_and_caption() -> None:
    tree = BigEarthNetV2Tree(SAMPLE)
    lat, lon = centre_lat_lon(tree.reference_map_file(REAL))
    # T33UUP: UL = (300000 + 1200*26, 5400000 - 1200*57), EPSG:32633 -> centre near Braunau, Austria
    assert 48.0 < lat < 48.2 and 12.6 < lon < 12.9
    attrs = extract_attributes(tree.read_reference_map(REAL))
    ctx = PatchContext(REAL, "S1B", "test", "Austria", "summer", lat, lon, "Cfb")
    cap = generate_patch(attrs, ctx, GeneratorConfig(), 0)[0]["output"]
    for fact in ("Austria", "summer", "Cfb", "708,000 m²", "Arable land", "Pastures", "2 separate regions"):
        assert fact in cap


def test_only_the_largest_class_is_called_dominant() -> None:
    ref = np.full((120, 120), 211, dtype=np.uint16)  # arable land 60 %
    ref[:, 72:] = 311  # broad-leaved forest 40 %: also primary (> 25 %)
    for seed in range(6):
        text = next(r["output"] for r in generate_patch(extract_attributes(ref), _ctx(), GeneratorConfig(), seed))
        for sentence in re.split(r"(?<=\.) ", text):
            if "dominates" in sentence or "largest part" in sentence:
                assert "Arable land" in sentence and "Broad-leaved forest" not in sentence
        assert "Broad-leaved forest" in text and "40%" in text
