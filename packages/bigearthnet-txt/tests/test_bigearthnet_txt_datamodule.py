import itertools
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from rsim.bigearthnet_txt.attributes import direction, extract_attributes
from rsim.bigearthnet_txt.data import BigEarthNetTxtDataModule
from rsim.bigearthnet_txt.evaluate import parse_box
from rsim.bigearthnet_txt.generate import GeneratorConfig, PatchContext, generate_patch, referring
from rsim.bigearthnet_txt.pipeline import ShardTask, annotate, select_patches
from rsim.core.data import BigEarthNetV2Tree
from rsim.core.data.nomenclature import clc_code_to_19
from rsim.core.testing import write_benv2_fixture, write_benv2_lmdb

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "benv2"
REAL = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("benv2")
    fx = write_benv2_fixture(root, splits={"train": 2, "validation": 1, "test": 1})
    tree = BigEarthNetV2Tree(fx.root)
    patches = select_patches(tree, fx.metadata, climate_source="none")
    task = ShardTask(str(fx.root), "", tuple(patches), GeneratorConfig(), 0, "none")
    frame = pd.DataFrame([r for p in patches for r in annotate(tree, p, task)])
    bench = frame.loc[frame["split"] == "test"].assign(split="bench")
    frame = pd.concat([frame, bench], ignore_index=True)
    ann = root / "ann.parquet"
    frame.to_parquet(ann)
    lmdb = write_benv2_lmdb(fx.root, root / "store.lmdb")
    return fx.root, ann, lmdb


def test_filters_and_bench_guard(data) -> None:  # type: ignore[no-untyped-def]
    root, ann, _ = data
    with pytest.raises(ValueError, match="bench"):
        BigEarthNetTxtDataModule(str(ann), str(root), train_splits=["train", "bench"])
    dm = BigEarthNetTxtDataModule(str(ann), str(root), types=["mcq"], categories=["season", "country"])
    dm.setup()
    train = dm.frames["train"]
    assert set(train["split"]) == {"train"} and set(train["category"]) == {"season", "country"}
    bench = BigEarthNetTxtDataModule(str(ann), str(root), test_split="bench")
    bench.setup()
    assert set(bench.frames["test"]["split"]) == {"bench"}
    opted = BigEarthNetTxtDataModule(str(ann), str(root), train_splits=["train", "bench"], allow_bench_in_training=True)
    opted.setup()
    assert "bench" in set(opted.frames["train"]["split"])


def test_geotiff_and_lmdb_batches_agree(data) -> None:  # type: ignore[no-untyped-def]
    root, ann, lmdb = data
    batches = []
    for images in (root, lmdb):
        dm = BigEarthNetTxtDataModule(str(ann), str(images), batch_size=4, types=["bounding box"])
        batch = next(iter(dm.val_dataloader()))
        batches.append(dm.transform_batch(batch, train=False))
    assert batches[0]["image"].shape == (4, 12, 120, 120)
    torch.testing.assert_close(batches[0]["image"], batches[1]["image"])
    assert batches[0]["output"] == batches[1]["output"]


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared sample data absent")
@pytest.mark.parametrize("axis", ["xy", "yx"])
def test_augmentation_keeps_boxes_points_and_directions_true(axis: str) -> None:
    ref = BigEarthNetV2Tree(SAMPLE).read_reference_map(REAL).astype(np.int64)
    config = GeneratorConfig(box_axis=axis)  # type: ignore[arg-type]
    attrs = extract_attributes(ref)
    rows = referring(attrs, config)
    inputs = [q for q, _, _ in rows]
    outputs = [a for _, a, _ in rows]
    a, b = attrs.classes[3], attrs.classes[0]
    inputs.append(f"Where is {a.name} relative to {b.name}?")
    outputs.append(direction(b.largest.centroid, a.largest.centroid))
    dm = BigEarthNetTxtDataModule("unused", "unused", normalization=None, box_axis=axis)  # type: ignore[arg-type]
    n = len(inputs)
    for h, v, k in itertools.product([False, True], [False, True], [0, 1, 2, 3]):
        image = torch.from_numpy(ref)[None, None].repeat(n, 1, 1, 1).float()
        params = (torch.full((n,), h), torch.full((n,), v), torch.full((n,), k))
        out_img, new_in, new_out = dm.geometric(image, inputs, outputs, params)
        moved = out_img[0, 0].long().numpy()
        # regenerate every text from the transformed map: it must equal the transformed text
        attrs2 = extract_attributes(moved.astype(np.uint16))
        expected = referring(attrs2, config)
        # boxes: equal up to the 2-decimal rounding of the text (1 - round(x) vs round(1 - x))
        got = np.array([parse_box(x) for x in new_out[:-1]])
        want = np.array([parse_box(x) for _, x, _ in expected])
        np.testing.assert_allclose(got, want, atol=0.0101, err_msg=str((h, v, k)))
        assert [q.split("<point>")[0] for q in new_in[:-1]] == [q.split("<point>")[0] for q, _, _ in expected]
        # points: still on the class they pointed at (within the text's 0.01 rounding, i.e. one pixel)
        for i, ((_, _, cat), q) in enumerate(zip(rows, new_in[:-1], strict=True)):
            if cat != "point":
                continue
            name = re.search(r"region of (.+)</ref>", rows[i - 1][0]).group(1)  # the paired box prompt
            first, second = (float(t) for t in re.search(r"\(([\d.]+), ([\d.]+)\)", q).groups())
            x, y = (first, second) if axis == "xy" else (second, first)
            r, col = min(int(y * 120), 119), min(int(x * 120), 119)
            codes = set(moved[max(r - 1, 0) : r + 2, max(col - 1, 0) : col + 2].ravel().tolist())
            assert name in {clc_code_to_19()[code] for code in codes}, (h, v, k, name)
        by2 = attrs2.by_name()
        assert new_out[-1] == direction(by2[b.name].largest.centroid, by2[a.name].largest.centroid), (h, v, k)


def test_caption_directions_follow_flips() -> None:
    dm = BigEarthNetTxtDataModule("unused", "unused", normalization=None)
    image = torch.zeros(1, 1, 4, 4)
    text = ["The largest region of A is located to the north-east of B; C lies south."]
    _, _, out = dm.geometric(image, ["q"], text, (torch.tensor([True]), torch.tensor([False]), torch.tensor([0])))
    assert out == ["The largest region of A is located to the north-west of B; C lies south."]
    _, _, out = dm.geometric(image, ["q"], text, (torch.tensor([False]), torch.tensor([False]), torch.tensor([1])))
    assert out == ["The largest region of A is located to the north-west of B; C lies east."]
    assert re.search("<point>", "x") is None
    ctx = PatchContext("P_20170613T101031_X_00_00", "S1", "train", "Austria", "summer", 47.0, 13.0, "Dfb")
    assert generate_patch(extract_attributes(np.zeros((120, 120), np.uint16)), ctx, GeneratorConfig(), 0) == []
