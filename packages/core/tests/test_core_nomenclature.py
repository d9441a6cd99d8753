from __future__ import annotations

import numpy as np
import pytest
import rasterio
from core_paths import BENV2, REF_SAMPLE
from rsim.core.data import nomenclature as nom
from rsim.core.data.bigearthnet import load_metadata


def test_clc_table_matches_the_shipped_json() -> None:
    table = nom.clc_table()
    assert len(table) == 45
    assert sum(e.name_19 == nom.UNLABELED for e in table) == 13
    assert set(nom.clc_code_to_19().values()) - {nom.UNLABELED} == set(nom.BEN19_LABELS)
    assert nom.clc_code_to_19()[243] == nom.BEN19_LABELS[6]
    assert nom.clc_code_to_19()[523] == "Marine waters"


def test_v1_names_map_by_exact_clc_name() -> None:
    mapped = nom.v1_labels_to_19(["Non-irrigated arable land", "Transitional woodland/shrub", "Sea and ocean"])
    assert mapped == ["Arable land", "Transitional woodland, shrub", "Marine waters"]
    assert nom.v1_labels_to_19(["Burnt areas"]) == []  # 334 is UNLABELED in the 19-class nomenclature
    with pytest.raises(KeyError, match="Transitional woodland, shrub"):
        nom.v1_labels_to_19(["Transitional woodland, shrub"], source="x.json")  # 19-class spelling is not v1


def test_label_orders_and_multi_hot() -> None:
    alpha = nom.label_names("alphabetical")
    assert list(alpha) == sorted(nom.BEN19_LABELS)
    vec = nom.multi_hot(["Pastures", "Arable land"])
    assert vec.dtype == np.float32 and vec.sum() == 2 and vec[2] == 1 and vec[4] == 1
    assert nom.multi_hot(["Pastures"], "alphabetical")[alpha.index("Pastures")] == 1
    with pytest.raises(KeyError, match="Pasture"):
        nom.multi_hot(["Pasture"])
    with pytest.raises(ValueError, match="label order"):
        nom.label_names("random")  # type: ignore[arg-type]


def test_reference_map_gives_exactly_the_metadata_labels() -> None:
    path = BENV2 / "Reference_Maps" / REF_SAMPLE.rsplit("_", 2)[0] / REF_SAMPLE / f"{REF_SAMPLE}_reference_map.tif"
    with rasterio.open(path) as src:
        codes = src.read(1)
    values, counts = np.unique(codes, return_counts=True)
    assert dict(zip(values.tolist(), counts.tolist(), strict=True)) == {
        211: 7075,
        231: 1154,
        311: 4131,
        313: 2040,
    }
    meta = load_metadata(BENV2 / "metadata" / "metadata.parquet")
    labels = meta.loc[meta["patch_id"] == REF_SAMPLE, "labels"].iloc[0]
    np.testing.assert_array_equal(nom.reference_map_to_multi_hot(codes), nom.multi_hot(labels))
    with pytest.raises(ValueError, match="777"):
        nom.reference_map_to_multi_hot(np.array([[777]]))


def test_band_presets() -> None:
    assert nom.band_presets("S2") == ("B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12")
    assert len(nom.band_presets("S1S2")) == 12
    assert nom.band_presets(["B04", "VV"]) == ("B04", "VV")
    with pytest.raises(ValueError, match="B10"):
        nom.band_presets(["B10"])
    with pytest.raises(ValueError, match="preset"):
        nom.band_presets("S3")
