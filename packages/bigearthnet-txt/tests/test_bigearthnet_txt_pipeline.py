from pathlib import Path

import pandas as pd
import pytest
from rsim.bigearthnet_txt.cli import main
from rsim.bigearthnet_txt.generate import COLUMNS
from rsim.bigearthnet_txt.pipeline import config_from_dict, generate_archive, read_annotations
from rsim.core.data import load_metadata
from rsim.core.errors import DataFormatError
from rsim.core.testing import write_benv2_fixture


@pytest.fixture(scope="module")
def fixture(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return write_benv2_fixture(tmp_path_factory.mktemp("benv2"), splits={"train": 3, "validation": 1, "test": 1})


def _run(fx, out: Path, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("climate_source", "none")
    return generate_archive(
        fx.root, out, fx.metadata, shard_size=2, processes=False, n_workers=1, show_progress=False, **kw
    )


def test_generate_resume_and_schema(fixture, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    report = _run(fixture, out, seed=1)
    assert (report.n_patches, report.shards_written, report.shards_resumed) == (5, 3, 0)
    frame = read_annotations(out)
    assert list(frame.columns) == list(COLUMNS) and len(frame) == report.rows_written
    assert set(frame["patch_id"]) == set(fixture.metadata["patch_id"])
    assert set(frame["split"]) == {"train", "validation", "test"} and set(frame["season"]) == {"summer"}
    assert frame["latitude"].between(40, 55).all() and (frame["climate_zone"] == "").all()
    # resume: remove one shard, rerun -> only it is written again, byte-identical content
    before = pd.read_parquet(out / "part-00001.parquet")
    (out / "part-00001.parquet").unlink()
    again = _run(fixture, out, seed=1)
    assert (again.shards_written, again.shards_resumed) == (1, 2)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "part-00001.parquet"), before)
    with pytest.raises(ValueError, match="other options"):
        _run(fixture, out, seed=2)


def test_failure_leaves_no_partial_shard(fixture, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    meta = fixture.metadata.copy()
    meta.loc[len(meta)] = meta.iloc[0]
    meta.loc[len(meta) - 1, "patch_id"] = meta.iloc[0]["patch_id"][:-5] + "49_49"
    bad = fixture.root / "Reference_Maps" / meta.iloc[0]["patch_id"].rsplit("_", 2)[0] / meta.iloc[-1]["patch_id"]
    bad.mkdir(parents=True)
    (bad / f"{meta.iloc[-1]['patch_id']}_reference_map.tif").write_bytes(b"not a tiff")
    try:
        with pytest.raises(DataFormatError, match="49_49"):
            generate_archive(
                fixture.root,
                tmp_path / "o",
                meta,
                shard_size=10,
                processes=False,
                n_workers=1,
                show_progress=False,
                climate_source="none",
            )
        assert not list((tmp_path / "o").glob("*.parquet*")) and not list((tmp_path / "o").glob(".part*"))
    finally:
        (bad / f"{meta.iloc[-1]['patch_id']}_reference_map.tif").unlink()
        bad.rmdir()


def test_climate_column_and_options(fixture, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    meta = fixture.metadata.assign(climate_zone="Dfb")
    generate_archive(
        fixture.root,
        tmp_path / "c",
        meta,
        climate_source="column",
        processes=False,
        n_workers=1,
        show_progress=False,
        limit=2,
    )
    frame = read_annotations(tmp_path / "c")
    assert (frame["climate_zone"] == "Dfb").all() and frame["patch_id"].nunique() == 2
    assert frame["input"].str.contains("climate zone").any()
    with pytest.raises(DataFormatError, match="climate_zone"):
        generate_archive(fixture.root, tmp_path / "d", fixture.metadata, climate_source="column", processes=False)
    with pytest.raises(ValueError, match="unknown generator option"):
        config_from_dict({"bogus": 1})
    assert config_from_dict({"attributes": {"connectivity": 4}, "box_axis": "yx"}).attributes.connectivity == 4


def test_cli_generate_and_evaluate(fixture, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "cli"
    cfg = tmp_path / "gen.yaml"
    cfg.write_text("attributes:\n  connectivity: 4\nbinary_per_category: 1\n")
    argv = [
        "generate",
        str(fixture.root),
        str(out),
        "--metadata",
        str(fixture.metadata_path),
        "--config",
        str(cfg),
        "--threads",
        "--workers",
        "1",
        "--climate-source",
        "none",
        "--no-progress",
        "--show",
        "2",
    ]
    assert main(argv) == 0
    assert "5 patches" in capsys.readouterr().out
    frame = read_annotations(out)
    frame["prediction"] = frame["output"]
    frame.to_parquet(tmp_path / "pred.parquet")
    assert main(["evaluate", str(tmp_path / "pred.parquet"), "--meteor", "off"]) == 0  # METEOR: caption metrics test
    text = capsys.readouterr().out
    assert "binary" in text and "100.00" in text
    assert len(load_metadata(fixture.metadata_path)) == 5
