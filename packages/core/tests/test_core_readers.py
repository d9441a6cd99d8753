from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import rasterio
from core_paths import BENV1, BENV2, REF_SAMPLE, S1_SAMPLE, S2_SAMPLE
from rsim.core.data import BigEarthNetV1Tree, BigEarthNetV2Tree, LmdbPatchStore, PatchTable, load_metadata
from rsim.core.data.bigearthnet import BigEarthNetDataset, v1_patch_table
from rsim.core.data.nomenclature import S1_BANDS, S2_BANDS, multi_hot
from rsim.core.errors import DataFormatError, MissingKeyError

META = BENV2 / "metadata" / "metadata.parquet"
SNOW = BENV2 / "metadata" / "metadata_for_patches_with_snow_cloud_or_shadow.parquet"


def test_v2_reader_returns_exactly_what_rasterio_reads() -> None:
    tree = BigEarthNetV2Tree(BENV2)
    s2 = tree.read_s2(S2_SAMPLE, S2_BANDS)
    s1 = tree.read_s1(S1_SAMPLE, S1_BANDS)
    for band, array in {**s2, **s1}.items():
        name = S1_SAMPLE if band in S1_BANDS else S2_SAMPLE
        with rasterio.open(tree.band_file(name, band)) as src:
            np.testing.assert_array_equal(array, src.read(1))
            assert array.dtype == src.dtypes[0]
    assert {b: a.shape for b, a in s2.items()}["B01"] == (20, 20)
    assert s2["B05"].shape == (60, 60) and s2["B02"].shape == (120, 120)
    assert s1["VV"].dtype == np.float32 and s2["B02"].dtype == np.uint16
    ref = tree.read_reference_map(REF_SAMPLE)
    assert ref.dtype == np.uint16 and int(ref.sum()) == 211 * 7075 + 231 * 1154 + 311 * 4131 + 313 * 2040


def test_v2_reader_matches_rico_hdl_decoded_json() -> None:
    decoded = json.loads((BENV2 / "expected" / "BigEarthNet_LMDB_decoded.json").read_text())["entries"]
    tree = BigEarthNetV2Tree(BENV2)
    for key, entry in decoded.items():
        bands = list(entry["bands"])
        arrays = tree.read_s1(key, bands) if key.startswith("S1") else tree.read_s2(key, bands)
        for band, info in entry["bands"].items():
            assert list(arrays[band].shape) == info["shape"]
            assert hashlib.sha256(arrays[band].tobytes()).hexdigest() == info["sha256_of_array_bytes"]


def test_rico_hdl_store_equals_the_geotiffs() -> None:
    store = LmdbPatchStore(BENV2 / "expected" / "BigEarthNet_LMDB")
    tree = BigEarthNetV2Tree(BENV2)
    assert sorted(store.keys()) == [S1_SAMPLE, S2_SAMPLE] and len(store) == 2
    for band, array in store.read_s2(S2_SAMPLE, S2_BANDS).items():
        np.testing.assert_array_equal(array, tree.read_s2(S2_SAMPLE, [band])[band])
        assert array.dtype == np.uint16
    for band, array in store.read_s1(S1_SAMPLE, S1_BANDS).items():
        np.testing.assert_array_equal(array, tree.read_s1(S1_SAMPLE, [band])[band])


def test_real_metadata_counts_and_snow_cloud_filter() -> None:
    meta = load_metadata(META, snow_cloud_path=SNOW)
    assert len(meta) == 480_038
    assert meta["split"].value_counts().to_dict() == {
        "train": 237_871,
        "validation": 122_342,
        "test": 119_825,
    }
    everything = load_metadata(META, snow_cloud_path=SNOW, filter_snow_cloud=False)
    assert len(everything) == 549_488
    table = PatchTable.from_metadata(meta, "validation")
    assert table.labels.shape == (122_342, 19) and (table.labels.sum(1) >= 1).all()
    row = table.position(S2_SAMPLE)
    labels = meta.loc[meta["patch_id"] == S2_SAMPLE, "labels"].iloc[0]
    np.testing.assert_array_equal(table.labels[row], multi_hot(labels))
    assert table.s1_keys[row] == "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_75_43"


def test_filtered_metadata_read_returns_the_same_rows() -> None:
    full = load_metadata(META)
    some = load_metadata(META, patch_ids=[S2_SAMPLE, "not-a-patch"], columns=["patch_id", "split", "s1_name"])
    assert list(some.columns) == ["patch_id", "split", "s1_name"] and len(some) == 1
    expected = full.loc[full["patch_id"] == S2_SAMPLE, ["split", "s1_name"]].iloc[0].tolist()
    assert some[["split", "s1_name"]].iloc[0].tolist() == expected
    with pytest.raises(DataFormatError, match=r"metadata.parquet lacks column\(s\) \['latitude'\]"):
        load_metadata(META, columns=["patch_id", "latitude"])


def test_missing_s1_partner_of_the_real_sample_is_named() -> None:
    meta = load_metadata(META)
    table = PatchTable.from_metadata(meta, "validation")
    dataset = BigEarthNetDataset(BigEarthNetV2Tree(BENV2), table, ["B02", "VV"])
    with pytest.raises(FileNotFoundError, match=r"S2A_.*_75_43.*S1 partner S1A_.*_33UUP_75_43 is absent"):
        dataset.sample(S2_SAMPLE)
    s2_only = BigEarthNetDataset(BigEarthNetV2Tree(BENV2), table, ["B02", "B05"])
    sample = s2_only.sample(S2_SAMPLE)
    assert sample["bands"]["B05"].shape == (60, 60) and sample["label"].sum() == 3


def test_patch_absent_from_metadata_is_named() -> None:
    table = PatchTable.from_metadata(load_metadata(META), "train")
    with pytest.raises(MissingKeyError, match=r"S2A_.*_75_43 is absent from metadata"):
        table.position(S2_SAMPLE)  # a validation patch is not in the train split


def test_v1_examples_read_and_map_to_v2_splits() -> None:
    tree = BigEarthNetV1Tree.from_root(BENV1)
    assert len(tree.patch_names()) == 6
    arrays = tree.read_s2("S2A_MSIL2A_20170613T101031_87_48", S2_BANDS)
    assert arrays["B01"].shape == (20, 20) and arrays["B8A"].shape == (60, 60)
    s1 = tree.read_s1("S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48", ["VV", "VH"])
    assert s1["VV"].dtype == np.float32
    assert tree.labels_19("S2A_MSIL2A_20170617T113321_36_85") == ["Arable land", "Pastures"]
    meta = load_metadata(META)
    train = v1_patch_table(tree, split="train", metadata=meta)
    assert sorted(train.s2_keys) == [
        "S2A_MSIL2A_20170613T101031_87_48",
        "S2A_MSIL2A_20170617T113321_36_85",
        "S2A_MSIL2A_20170617T113321_4_55",
    ]
    assert train.s1_keys[list(train.s2_keys).index("S2A_MSIL2A_20170617T113321_4_55")].endswith("_29UPU_4_55")
    test = v1_patch_table(tree, split="test", metadata=meta)
    assert list(test.s2_keys) == ["S2A_MSIL2A_20171221T112501_56_35"]  # _57_38 is in the snow/cloud file
    everything = load_metadata(META, snow_cloud_path=SNOW, filter_snow_cloud=False)
    assert len(v1_patch_table(tree, split="test", metadata=everything)) == 2
