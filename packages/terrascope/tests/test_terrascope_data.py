"""Data layer: bench rules, bench/CoT generators, released formats, loaders' errors, fixture writers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from rsim.core.errors import DataFormatError, MissingKeyError
from rsim.core.parallel import dask_client
from rsim.terrascope.data.bench import (
    BENCH_COLUMNS,
    BenchConfig,
    bench_items_from_label_map,
    building_change_items,
    format_mcq,
    load_bench,
    numeric_options,
)
from rsim.terrascope.data.cot import (
    CotConfig,
    cardinal_phrase,
    cot_records_from_label_map,
    load_cot,
    refseg_records_from_label_map,
    write_cot,
)
from rsim.terrascope.data.generate import generate_bench, generate_cot, list_reference_patches
from rsim.terrascope.data.images import decode_png, encode_png, s2_true_colour, sar_rgb
from rsim.terrascope.data.masks import decode_rle, encode_rle
from rsim.terrascope.data.rules import (
    borders,
    boundary_classes,
    building_change,
    class_masks,
    class_stats,
    comparable_pairs,
    min_distance_px,
    parse_wkt_polygon,
)
from rsim.terrascope.data.testing import write_bench_fixture, write_cot_fixture

BENV2 = Path(__file__).resolve().parents[3] / "shared" / "data" / "benv2"
SHIPPED = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57"


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """One in-process Dask cluster (a thread worker) shared by the generation tests."""
    with dask_client(n_workers=1, processes=False) as c:
        yield c


def _map() -> np.ndarray:
    """60×60 map: arable (211) left half, pastures (231) top-right, forest (311) bottom-right with a 14-px gap."""
    m = np.full((60, 60), 211, dtype=np.uint16)
    m[:30, 30:] = 231
    m[30:, 30:] = 211
    m[44:, 44:] = 311
    return m


def test_rules_area_coverage_ranking_distance_boundary() -> None:
    masks = class_masks(_map())
    assert list(masks) == ["Arable land", "Pastures", "Broad-leaved forest"]
    stats = {s.name: s for s in class_stats(masks, gsd_m=10.0)}
    assert stats["Pastures"].pixels == 900 and stats["Pastures"].area_m2 == 900 * 100.0
    assert stats["Broad-leaved forest"].coverage_pct == pytest.approx(100 * 256 / 3600)
    # 7.1 % forest passes the 5 % rule; with a 10 % threshold it is dropped from ranking
    pairs = {(a.name, b.name) for a, b in comparable_pairs(list(stats.values()))}
    assert ("Pastures", "Broad-leaved forest") in pairs
    assert not comparable_pairs(list(stats.values()), min_coverage_pct=10.0, min_rel_diff=0.9)
    assert borders(masks["Arable land"], masks["Pastures"])
    assert not borders(masks["Pastures"], masks["Broad-leaved forest"])
    assert min_distance_px(masks["Pastures"], masks["Broad-leaved forest"]) == pytest.approx(15.0)
    thin = np.zeros((20, 20), bool)
    thin[5, :] = True  # a 1-px line disappears under the 3×3 opening
    assert min_distance_px(thin, masks["Pastures"][:20, :20]) is None
    # boundary skip rules: > 5 components or < 3 % coverage
    checker = np.full((60, 60), 211, dtype=np.uint16)
    for k in range(6):
        checker[2 + 9 * k : 8 + 9 * k, 2:8] = 231
    s = class_stats(class_masks(checker))
    assert [c.name for c in boundary_classes(s)] == ["Arable land"]


def test_class_masks_rejects_unknown_codes() -> None:
    with pytest.raises(DataFormatError, match="not CLC Level-3"):
        class_masks(np.full((4, 4), 7, dtype=np.uint16), source="map.tif")


def test_bench_items_follow_rules_and_options() -> None:
    items = bench_items_from_label_map(_map(), patch_id="p", config=BenchConfig(min_distance_px=10.0))
    tasks = {i.task_type for i in items}
    assert tasks == {
        "coverage_percentage",
        "absolute_area",
        "comparative_area",
        "boundary_detection",
        "distance_measurement",
    }
    for it in items:
        assert len(it.candidates) == (2 if it.task_type in ("comparative_area", "boundary_detection") else 4)
        assert len(set(it.candidates)) == len(it.candidates)
    cov = next(i for i in items if i.task_type == "coverage_percentage" and "pastures" in i.question)
    assert cov.candidates[cov.answer_index] == "25.0%"
    dist = next(i for i in items if i.task_type == "distance_measurement")
    assert dist.candidates[dist.answer_index] == "150 m" and len(dist.gt_masks) == 2
    rank = next(i for i in items if i.task_type == "comparative_area" and "pastures" in i.question)
    assert rank.candidates[rank.answer_index] == "Arable land"
    assert "A. " in format_mcq(rank.question, rank.candidates)


def test_numeric_options_distinct_and_bounded() -> None:
    rng = np.random.default_rng(0)
    opts, k = numeric_options(97.0, rng, lambda v: f"{v:.1f}%", upper=100.0)
    assert opts[k] == "97.0%" and len(set(opts)) == 4
    assert all(float(o[:-1]) <= 100.0 for o in opts)


def test_building_change_from_polygons() -> None:
    def square(x: int, y: int) -> dict[str, object]:
        return {
            "wkt": f"POLYGON (({x} {y}, {x + 4} {y}, {x + 4} {y + 4}, {x} {y + 4}, {x} {y}))",
            "properties": {"subtype": "no-damage"},
        }

    pre = {"features": {"xy": [square(5 * i, 5 * j) for i in range(4) for j in range(3)]}}
    post = json.loads(json.dumps(pre))
    for f in post["features"]["xy"][:4]:
        f["properties"]["subtype"] = "destroyed"
    change = building_change(pre, post, (32, 32))
    assert change is not None and (change.n_total, change.n_destroyed) == (12, 4)
    assert change.destroyed_mask.sum() == 4 * 16 and change.pre_mask.sum() == 12 * 16
    item = building_change_items(change, patch_id="x")[0]
    assert item.candidates[item.answer_index] == "4"
    post["features"]["xy"][0]["properties"]["subtype"] = "no-damage"
    post["features"]["xy"][1]["properties"]["subtype"] = "no-damage"
    assert building_change(pre, post, (32, 32)) is None  # only 2 destroyed < 3
    with pytest.raises(DataFormatError, match="WKT"):
        parse_wkt_polygon("LINESTRING (0 0, 1 1)")
    with pytest.raises(DataFormatError, match="subtype"):
        building_change(pre, {"features": {"xy": [{"wkt": "POLYGON ((0 0, 1 0, 1 1))"}]}}, (4, 4))


def test_generate_bench_on_shipped_reference_map(tmp_path: Path, client: Any) -> None:
    assert list_reference_patches(BENV2, split="test") == [(SHIPPED, "S1B_IW_GRDH_1SDV_20170612T165809_33UUP_26_57")]
    with pytest.raises(FileNotFoundError, match="BigEarthNet-S2"):
        generate_bench(BENV2, tmp_path / "x.parquet", n_workers=1, processes=False, show_progress=False)
    report = generate_bench(
        BENV2, tmp_path / "bench.parquet", image_source="auto", n_workers=1, processes=False, show_progress=False
    )
    assert report.n_patches == 1 and report.n_items == 23
    assert report.per_task == {
        "coverage_percentage": 4,
        "absolute_area": 4,
        "comparative_area": 6,
        "boundary_detection": 6,
        "distance_measurement": 3,
    }
    df = pd.read_parquet(report.out)
    assert set(BENCH_COLUMNS) <= set(df.columns)
    assert set(df.iloc[0]["image"]) == {"bytes", "path"}
    items = load_bench(report.out)
    assert decode_png(items[0].image).shape == (120, 120, 3)
    assert all(m.shape == (120, 120) for it in items for m in it.gt_masks)
    # the shipped map: arable land covers 7075 of 14400 px
    arable = next(i for i in items if i.task_type == "coverage_percentage" and "arable" in i.question)
    assert arable.candidates[arable.answer_index] == "49.1%"


def test_bench_parquet_round_trip_and_errors(tmp_path: Path) -> None:
    items = write_bench_fixture(tmp_path / "b.parquet")
    back = load_bench(tmp_path / "b.parquet")
    assert [(b.question, b.candidates, b.answer) for b in back] == [(i.question, i.candidates, i.answer) for i in items]
    assert all(
        np.array_equal(x, y)
        for b, i in zip(back, items, strict=True)
        for x, y in zip(b.gt_masks, i.gt_masks, strict=True)
    )
    # released-style file: lettered candidates, no extra columns
    released = pd.DataFrame(
        {
            "image": [{"bytes": encode_png(np.zeros((4, 4, 3), np.uint8)), "path": "a.png"}],
            "question": ["q"],
            "candidates": [["A. 1", "B. 2", "C. 3", "D. 4"]],
            "answer": ["C"],
            "task_type": ["coverage_percentage"],
        }
    )
    released.to_parquet(tmp_path / "rel.parquet")
    (item,) = load_bench(tmp_path / "rel.parquet")
    assert item.candidates == ["1", "2", "3", "4"] and item.answer == "C" and item.gt_masks == []
    released.drop(columns="answer").to_parquet(tmp_path / "noans.parquet")
    with pytest.raises(DataFormatError, match=r"lacks column\(s\) \['answer'\]"):
        load_bench(tmp_path / "noans.parquet")
    released.assign(answer="E").to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataFormatError, match="row 0: answer 'E'"):
        load_bench(tmp_path / "bad.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataFormatError, match="junk.parquet"):
        load_bench(tmp_path / "junk.parquet")
    with pytest.raises(FileNotFoundError):
        load_bench(tmp_path / "missing.parquet")


def test_cot_templates_and_refseg() -> None:
    records = cot_records_from_label_map(_map(), image="a.png", record_id="a", config=CotConfig(max_per_template=None))
    assert {r.template for r in records} == {
        "existence",
        "counting",
        "localisation",
        "area",
        "percentage",
        "boundary",
        "distance",
    }
    for r in records:
        assert r.question.startswith("<image>\n")
        assert r.response.startswith("<think>") and r.response.endswith("</answer>")
        assert r.response.count("[SEG]") == len(r.masks)
    pct = next(r for r in records if r.template == "percentage" and "pastures" in r.question)
    assert pct.response.endswith("<answer>25.0%</answer>")
    assert np.array_equal(pct.decoded_masks()[0], _map() == 231)
    absent = [r for r in records if r.template == "existence" and r.response.endswith("<answer>No</answer>")]
    assert len(absent) == 1 and absent[0].masks == []
    refseg = refseg_records_from_label_map(_map(), image="a.png", record_id="a")
    assert next(r.question for r in refseg) == "<image>\nPlease segment the arable land."
    assert cardinal_phrase(_map() == 311) == "south-eastern part"


def test_load_cot_errors(tmp_path: Path) -> None:
    records = cot_records_from_label_map(_map(), image="a.png", record_id="a")
    path = write_cot(records, tmp_path / "c.json")
    assert len(load_cot(path)) == len(records)
    raw = json.loads(path.read_text())
    seg = next(r for r in raw if "[SEG]" in r["conversations"][1]["value"])
    bad = dict(seg, masks=[])
    (tmp_path / "bad.json").write_text(json.dumps([bad]))
    with pytest.raises(DataFormatError, match="record 0: 0 mask group"):
        load_cot(tmp_path / "bad.json")
    (tmp_path / "nokey.json").write_text(json.dumps([{k: v for k, v in seg.items() if k != "masks"}]))
    with pytest.raises(MissingKeyError, match="'masks' is missing"):
        load_cot(tmp_path / "nokey.json")
    corrupt = dict(seg, masks=[[{"size": [60, 60], "counts": "!!"}]])
    (tmp_path / "rle.json").write_text(json.dumps([corrupt]))
    with pytest.raises(DataFormatError, match="corrupt COCO RLE"):
        load_cot(tmp_path / "rle.json")
    (tmp_path / "trunc.json").write_text(path.read_text()[:50])
    with pytest.raises(DataFormatError, match="neither a JSON list"):
        load_cot(tmp_path / "trunc.json")


def test_generate_cot_and_fixture(tmp_path: Path, client: Any) -> None:
    report = generate_cot(
        BENV2,
        tmp_path / "cot",
        kind="refseg",
        image_source="reference_colors",
        n_workers=1,
        processes=False,
        show_progress=False,
    )
    recs = load_cot(report.out)
    assert report.n_items == len(recs) == 4 and (tmp_path / "cot" / "images" / f"{SHIPPED}.png").is_file()
    fx = write_cot_fixture(tmp_path / "fx", n_images=2, with_sar=True)
    assert len(load_cot(fx.json_path)) == len(fx.records) > 0
    assert (fx.root / "vh" / "img_000.png").is_file()


def test_masks_and_images() -> None:
    m = np.zeros((7, 5), bool)
    m[2:5, 1:3] = True
    assert np.array_equal(decode_rle(encode_rle(m)), m)
    assert decode_rle({"size": [2, 2], "counts": [1, 2, 1]}).sum() == 2
    with pytest.raises(DataFormatError, match="size"):
        decode_rle({"size": [0, 2], "counts": ""})
    vh = np.full((4, 4), -30.0, np.float32)
    out = sar_rgb(vh, np.full((4, 4), 5.0, np.float32))
    assert out[0, 0].tolist() == [0, 255, 128]
    with pytest.raises(DataFormatError, match="NaN"):
        sar_rgb(vh, np.full((4, 4), np.nan, np.float32))
    rgb = s2_true_colour({b: np.full((2, 2), v, np.uint16) for b, v in (("B04", 3000), ("B03", 1500), ("B02", 0))})
    assert rgb[0, 0].tolist() == [255, 128, 0]
    with pytest.raises(DataFormatError, match="PNG or JPEG"):
        decode_png(b"\x89PNG\r\n")


def test_generators_on_full_archive_with_s1(tmp_path: Path, client: Any) -> None:
    from rsim.core.testing import write_benv2_fixture

    fx = write_benv2_fixture(tmp_path / "ben", splits={"train": 2, "validation": 0, "test": 1}, snow_cloud=0)
    report = generate_cot(
        fx.root,
        tmp_path / "cot",
        split="train",
        config=CotConfig(templates=("percentage",)),
        client=client,
        show_progress=False,
    )
    assert report.n_patches == 2
    names = {p.name for p in (tmp_path / "cot" / "vh").iterdir()}
    assert names == {p.name for p in (tmp_path / "cot" / "images").iterdir()} and len(names) == 2
    img = decode_png((tmp_path / "cot" / "images" / sorted(names)[0]).read_bytes())
    assert img.shape == (120, 120, 3) and img.std() > 0  # true colour from the S2 bands
    bench = generate_bench(fx.root, tmp_path / "b.parquet", split="test", client=client, show_progress=False)
    test_patch = fx.metadata.loc[fx.metadata["split"] == "test", "patch_id"].iloc[0]
    assert bench.n_patches == 1 and load_bench(bench.out)[0].patch_id == test_patch


def test_load_cot_accepts_flat_masks(tmp_path: Path) -> None:
    m = np.zeros((6, 6), bool)
    m[1:3] = True
    rec = {
        "image": "a.png",
        "masks": [encode_rle(m), encode_rle(~m)],
        "conversations": [
            {"from": "human", "value": "<image>\nq"},
            {"from": "gpt", "value": "<think>[SEG] [SEG]</think><answer>x</answer>"},
        ],
    }
    (tmp_path / "flat.json").write_text(json.dumps([rec]))
    (back,) = load_cot(tmp_path / "flat.json")
    masks = back.decoded_masks()
    assert np.array_equal(masks[0], m) and np.array_equal(masks[1], ~m) and back.id == "0"


def test_building_change_from_xbd_pairs(tmp_path: Path, client: Any) -> None:
    from rsim.terrascope.data.testing import write_xbd_fixture
    from rsim.terrascope.data.xbd import generate_building_change, list_xbd_pairs

    names = write_xbd_fixture(tmp_path / "xbd", n_pairs=2, destroyed=(4, 1))
    assert list_xbd_pairs(tmp_path / "xbd") == names
    report = generate_building_change(tmp_path / "xbd", tmp_path / "bc.parquet", client=client, show_progress=False)
    assert (report.n_patches, report.n_items) == (2, 1)  # the pair with 1 destroyed building fails N_destroyed >= 3
    (item,) = load_bench(report.out)
    assert item.task_type == "building_change" and item.candidates[item.answer_index] == "4"
    assert decode_png(item.image).shape == (64, 128, 3)  # pre | post side by side
    assert [int(m.sum()) for m in item.gt_masks] == [12 * 64, 4 * 64]
    (tmp_path / "xbd" / "labels" / f"{names[0]}_post_disaster.json").write_text("{truncated")
    with pytest.raises(DataFormatError, match="post_disaster.json is not valid JSON"):
        generate_building_change(tmp_path / "xbd", tmp_path / "x.parquet", client=client, show_progress=False)
