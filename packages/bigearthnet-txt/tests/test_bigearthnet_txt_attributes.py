from pathlib import Path

import numpy as np
import pytest
from rsim.bigearthnet_txt.attributes import AttributeConfig, direction, extract_attributes, round_area, tier_of
from rsim.bigearthnet_txt.generate import GeneratorConfig, box_text, point_text
from rsim.core.data import BigEarthNetV2Tree
from rsim.core.errors import DataFormatError

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "benv2"
REAL = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57"


def test_connectivity_option_changes_region_count() -> None:
    ref = np.full((120, 120), 231, dtype=np.uint16)  # pastures
    ref[10:20, 10:20] = 211  # arable
    ref[20:30, 20:30] = 211  # touches the first block only diagonally
    eight = extract_attributes(ref, AttributeConfig(connectivity=8)).by_name()["Arable land"]
    four = extract_attributes(ref, AttributeConfig(connectivity=4)).by_name()["Arable land"]
    assert eight.n_regions == 1 and four.n_regions == 2
    assert four.pixels == 200 and four.area_m2 == 20000
    assert [i.pixels for i in four.instances] == [100, 100]


def test_tiers_areas_adjacency_and_unlabelled() -> None:
    ref = np.full((120, 120), 311, dtype=np.uint16)  # broad-leaved forest
    ref[:, :40] = 211  # 33 % arable
    ref[0:5, 100:120] = 512  # inland water, 100 px = 0.69 %
    ref[60:70, 100:120] = 122  # roads: UNLABELED, ignored
    ref[110:120, 110:120] = 0  # nodata
    attrs = extract_attributes(ref)
    by = attrs.by_name()
    assert set(by) == {"Arable land", "Broad-leaved forest", "Inland waters"}
    assert by["Arable land"].tier == "primary" and by["Inland waters"].tier == "marginal"
    assert by["Inland waters"].area_m2 == 10000
    assert attrs.adjacent("Arable land", "Broad-leaved forest")
    assert attrs.adjacent("Inland waters", "Broad-leaved forest")
    assert not attrs.adjacent("Arable land", "Inland waters")
    assert attrs.classes[0].name == "Broad-leaved forest"


def test_adjacency_radius_option() -> None:
    ref = np.full((120, 120), 311, dtype=np.uint16)
    ref[:, :50] = 211
    ref[:, 51:] = 512  # a 1-px forest strip separates arable from water
    assert not extract_attributes(ref).adjacent("Arable land", "Inland waters")
    assert extract_attributes(ref, AttributeConfig(adjacency_radius=2)).adjacent("Arable land", "Inland waters")


def test_rounding_tiers_and_directions() -> None:
    assert round_area(5) == 1000 and round_area(4) == 0 and round_area(14) == 1000 and round_area(15) == 2000
    cfg = AttributeConfig()
    assert tier_of(0.2501, cfg) == "primary" and tier_of(0.25, cfg) == "secondary"
    assert tier_of(0.05, cfg) == "secondary" and tier_of(0.0499, cfg) == "marginal"
    assert direction((60, 60), (10, 60)) == "north"
    assert direction((60, 60), (60, 100)) == "east"
    assert direction((60, 60), (100, 20)) == "south-west"
    assert direction((60, 60), (20, 100)) == "north-east"


def test_bad_code_and_shape_are_named() -> None:
    ref = np.full((120, 120), 211, dtype=np.uint16)
    ref[0, 0] = 777
    with pytest.raises(DataFormatError, match="patch_x.*777"):
        extract_attributes(ref, source="patch_x")
    with pytest.raises(DataFormatError, match="2-D"):
        extract_attributes(np.zeros((2, 120, 120), dtype=np.uint16))
    with pytest.raises(ValueError, match="connectivity"):
        AttributeConfig(connectivity=6)


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared sample data absent")
def test_real_reference_map_matches_released_box_and_point() -> None:
    ref = BigEarthNetV2Tree(SAMPLE).read_reference_map(REAL)
    attrs = extract_attributes(ref)
    by = attrs.by_name()
    assert [c.name for c in attrs.classes] == ["Arable land", "Broad-leaved forest", "Mixed forest", "Pastures"]
    assert sum(c.pixels for c in attrs.classes) == int((ref > 0).sum())
    assert by["Pastures"].n_regions == 2 and by["Mixed forest"].tier == "secondary"
    assert attrs.adjacent("Broad-leaved forest", "Mixed forest") and not attrs.adjacent("Pastures", "Mixed forest")
    mixed = by["Mixed forest"].largest
    # The dossier quotes `[0.64 0.0, 1.0 0.71]` and `<point>(0.82, 0.28)</point>` from the released parquet;
    # the Mixed-forest region of this patch reproduces both with the default (x = column) convention.
    assert box_text(mixed, GeneratorConfig()) == "[0.64 0.0, 1.0 0.71]"
    assert point_text(mixed, GeneratorConfig()) == "<point>(0.82, 0.28)</point>"
    assert box_text(mixed, GeneratorConfig(box_axis="yx")) == "[0.0 0.64, 0.71 1.0]"
    r, c = mixed.interior
    assert ref[r, c] == 313
