from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from core_paths import BENV2, REF_SAMPLE, S1_SAMPLE, S2_SAMPLE
from rsim.core.cli import main
from rsim.core.data import BigEarthNetV2Tree, LmdbPatchStore
from rsim.core.data import encode as encode_module
from rsim.core.data.encode import encode_bigearthnet
from rsim.core.data.nomenclature import S1_BANDS, S2_BANDS
from rsim.core.errors import DataFormatError, MissingKeyError


def test_cli_encode_reproduces_rico_hdl_store(tmp_path: Path) -> None:
    out = tmp_path / "BigEarthNet.lmdb"
    code = main(["encode", "bigearthnet", str(BENV2), str(out), "--modalities", "S1", "S2", "reference_maps",
                 "--threads", "--workers", "1", "--quiet"])  # fmt: skip
    assert code == 0 and out.is_dir() and not (tmp_path / "BigEarthNet.lmdb.partial").exists()
    ours, expected = LmdbPatchStore(out), LmdbPatchStore(BENV2 / "expected" / "BigEarthNet_LMDB")
    assert sorted(ours.keys()) == sorted([*expected.keys(), REF_SAMPLE + "_reference_map"])
    for key in expected.keys():
        a, b = ours.read(key), expected.read(key)
        assert sorted(a) == sorted(b)
        for band in b:
            assert a[band].dtype == b[band].dtype
            np.testing.assert_array_equal(a[band], b[band])
    np.testing.assert_array_equal(
        ours.read_reference_map(REF_SAMPLE), BigEarthNetV2Tree(BENV2).read_reference_map(REF_SAMPLE)
    )
    with pytest.raises(FileExistsError, match="overwrite"):
        encode_bigearthnet(BENV2, out, processes=False, n_workers=1, show_progress=False)


def test_lmdb_absent_key_and_band_are_named() -> None:
    store = LmdbPatchStore(BENV2 / "expected" / "BigEarthNet_LMDB")
    with pytest.raises(MissingKeyError, match=r"BigEarthNet_LMDB has no key 'S2A_nope'"):
        store.read("S2A_nope")
    with pytest.raises(MissingKeyError, match=r"band\(s\) \['VV'\] absent"):
        store.read_s2(S2_SAMPLE, ["B02", "VV"])
    with pytest.raises(MissingKeyError, match="_reference_map"):
        store.read_reference_map(S2_SAMPLE)
    with pytest.raises(FileNotFoundError, match="data.mdb"):
        LmdbPatchStore(BENV2 / "BigEarthNet-S2")


def test_interrupted_encode_leaves_no_store_and_resumes(benv2_fixture, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "tree"
    shutil.copytree(benv2_fixture.root, root)
    out = tmp_path / "out.lmdb"
    real_read_chunk = encode_module.read_chunk
    poisoned = encode_module.discover(root, ("S1", "S2"))[9].key  # fails the 5th of 9 chunks

    def flaky(args):  # type: ignore[no-untyped-def]
        if any(item.key == poisoned for item in args[1]):
            raise RuntimeError("simulated crash")
        return real_read_chunk(args)

    monkeypatch.setattr(encode_module, "read_chunk", flaky)
    with pytest.raises(RuntimeError, match="simulated crash"):
        encode_bigearthnet(root, out, chunk_size=2, processes=False, n_workers=1, show_progress=False)
    assert not out.exists()
    with LmdbPatchStore(tmp_path / "out.lmdb.partial") as partial:
        already = len(partial)
    assert 0 < already < 18
    monkeypatch.setattr(encode_module, "read_chunk", real_read_chunk)
    report = encode_bigearthnet(root, out, chunk_size=2, processes=False, n_workers=1, show_progress=False)
    assert report.total == 18 and report.skipped == already and report.written == 18 - report.skipped
    assert len(LmdbPatchStore(out)) == 18 and not (tmp_path / "out.lmdb.partial").exists()


def test_encode_fails_on_a_corrupt_file_without_leaving_a_store(benv2_fixture, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "tree"
    shutil.copytree(benv2_fixture.root, root)
    patch = benv2_fixture.metadata["patch_id"].iloc[0]
    band_file = BigEarthNetV2Tree(root).band_file(patch, "B03")
    band_file.write_bytes(band_file.read_bytes()[:300])
    with pytest.raises(DataFormatError, match=f"patch {patch}: cannot read .*_B03.tif"):
        encode_bigearthnet(root, tmp_path / "x.lmdb", processes=False, n_workers=1, show_progress=False)
    assert not (tmp_path / "x.lmdb").exists()


def test_rico_hdl_bands_are_all_present() -> None:
    store = LmdbPatchStore(BENV2 / "expected" / "BigEarthNet_LMDB")
    assert sorted(store.read(S2_SAMPLE)) == sorted(S2_BANDS)
    assert sorted(store.read(S1_SAMPLE)) == sorted(S1_BANDS)


def test_truncated_or_corrupt_values_are_named() -> None:
    from rsim.core.data.lmdb_store import decode_value, encode_value

    blob = encode_value({"B02": np.arange(12, dtype=np.uint16).reshape(3, 4), "VV": np.ones((2, 2), np.float32)})
    decoded = decode_value(blob, key="k", store="s")
    np.testing.assert_array_equal(decoded["B02"], np.arange(12, dtype=np.uint16).reshape(3, 4))
    assert decoded["VV"].dtype == np.float32 and decoded["B02"].flags.owndata
    assert list(decode_value(blob, key="k", store="s", bands=["VV"])) == ["VV"]
    with pytest.raises(DataFormatError, match=r"s: value of key 'k' .*do not fit"):
        decode_value(blob[:-5], key="k", store="s")
    with pytest.raises(DataFormatError, match="shorter than the 8-byte"):
        decode_value(blob[:3], key="k", store="s")
    with pytest.raises(DataFormatError, match="exceeds"):
        decode_value(b"\xff" * 8 + blob[8:], key="k", store="s")
