import numpy as np
import pytest
from rsim.bigearthnet_txt.attributes import extract_attributes
from rsim.bigearthnet_txt.generate import GeneratorConfig, PatchContext, generate_patch
from rsim.bigearthnet_txt.rewrite import IdentityRewriter, check_rewrite, facts, rewrite_rows

CAPTION = (
    "Captured during summer in Austria, this patch falls within the Cfb climate zone. Arable land dominates the "
    "scene, covering about 49% of the image (708,000 m²) in one contiguous region. Pastures lies to the south-east."
)


def test_facts_extraction() -> None:
    f = facts(CAPTION)
    assert {"summer", "austria", "cfb", "arable land", "pastures", "south-east", "#49", "#708000", "#1"} <= f
    assert "east" not in f and "south" not in f  # compound directions are one fact


def test_checker_accepts_paraphrase_and_rejects_changed_facts() -> None:
    paraphrase = (
        "This Cfb-zone patch in Austria was captured in summer. Arable land, in one contiguous region, covers 49% "
        "of it (708,000 m²), and Pastures lies to the south-east."
    )
    assert check_rewrite(CAPTION, paraphrase).accepted
    dropped = check_rewrite(CAPTION, paraphrase.replace(", and Pastures lies to the south-east", ""))
    assert not dropped.accepted and dropped.dropped == {"pastures", "south-east"} and dropped.text == CAPTION
    added = check_rewrite(CAPTION, paraphrase + " Some Mixed forest is visible.")
    assert not added.accepted and added.added == {"mixed forest"}
    wrong_number = check_rewrite(CAPTION, paraphrase.replace("708,000", "780,000"))
    assert not wrong_number.accepted and "#780000" in wrong_number.added


def test_rewrite_rows_identity_and_fake_llm() -> None:
    ref = np.full((120, 120), 311, dtype=np.uint16)
    ref[:, :60] = 211
    ctx = PatchContext("P_20170613T101031_X_00_00", "S1", "train", "Austria", "summer", 47.0, 13.0, "Dfb")
    rows = generate_patch(extract_attributes(ref), ctx, GeneratorConfig(), 0)
    same, results = rewrite_rows(rows, IdentityRewriter())
    assert same == rows and len(results) == 1 and results[0].accepted

    def drop_last_sentence(texts: list[str]) -> list[str]:
        return [t.rsplit(". ", 1)[0] + "." for t in texts]

    kept, results = rewrite_rows(rows, drop_last_sentence)
    assert not results[0].accepted and kept[0]["output"] == rows[0]["output"]
    with pytest.raises(ValueError, match="returned 0 texts"):
        rewrite_rows(rows, lambda texts: [])
