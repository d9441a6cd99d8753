import math

import pandas as pd
import pytest
from rsim.bigearthnet_txt.evaluate import (
    bleu,
    cider,
    evaluate_predictions,
    parse_box,
    parse_letter,
    parse_yes_no,
    rouge_l,
)


def test_strict_and_lenient_parsers() -> None:
    assert parse_yes_no("Yes.") == "yes" and parse_yes_no("no\nbecause") == "no"
    assert parse_yes_no("I think yes") is None and parse_yes_no("I think yes", "lenient") == "yes"
    assert parse_letter("b)") == "b" and parse_letter("(c)") == "c" and parse_letter("D") == "d"
    assert parse_letter("The answer is b) Pastures") is None
    assert parse_letter("The answer is b) Pastures", "lenient") == "b"
    assert parse_letter("e") is None
    assert parse_box("[0.64 0.0, 1.0 0.71]") == (0.64, 0.0, 1.0, 0.71)
    assert parse_box("box: [0.64 0.0, 1.0 0.71]") is None
    assert parse_box("box: [0.64 0.0, 1.0 0.71]", "lenient") == (0.64, 0.0, 1.0, 0.71)
    assert parse_box("[0.9 0.0, 0.1 0.71]") is None  # unordered corners are wrong in strict mode
    assert parse_box("[0.9 0.0, 0.1 0.71]", "lenient") == (0.1, 0.0, 0.9, 0.71)
    assert parse_box("[0.5 0.0, 1.5 0.71]") is None


def test_caption_metrics_hand_computed() -> None:
    cand, refs = ["the cat sat on the mat"], [["the cat is on the mat"]]
    b = bleu(cand, refs)
    assert b[0] == pytest.approx(5 / 6) and b[1] == pytest.approx(math.sqrt(0.5)) and b[2] == pytest.approx(0.5)
    assert b[3] == 0.0
    short = bleu(["the cat"], [["the cat is on the mat"]])
    assert short[0] == pytest.approx(math.exp(1 - 6 / 2))  # brevity penalty, precision 1
    assert rouge_l(cand, refs) == pytest.approx(5 / 6)
    # two captions with disjoint words: identical candidates give cosine 1 for every n -> 10
    # (a 3-word pair would give 7.5: it has no 4-grams)
    pair = ["arable land dominates here", "water lies near forest"]
    assert cider(pair, [[p] for p in pair]) == pytest.approx(10.0)
    assert cider(pair[::-1], [[p] for p in pair]) == pytest.approx(0.0)
    assert bleu(pair, [[p] for p in pair])[:3] == pytest.approx([1.0, 1.0, 1.0])


def test_evaluate_tables() -> None:
    frame = pd.DataFrame(
        {
            "type": ["binary", "binary", "binary", "mcq", "mcq", "bounding box", "bounding box", "captioning"],
            "category": ["presence", "presence", "area", "season", "season", "reference", "point", "None"],
            "output": ["yes", "no", "no", "a", "c", "[0.0 0.0, 0.5 0.5]", "[0.0 0.0, 0.5 0.5]", "arable land here"],
            "prediction": ["yes", "maybe no", "No.", "a)", "b", "[0.0 0.0, 0.5 0.25]", "garbage", "arable land here"],
        }
    )
    tables = evaluate_predictions(frame)
    summary = tables["summary"].iloc[0]
    assert summary["binary"] == pytest.approx(200 / 3) and summary["mcq"] == pytest.approx(50.0)
    assert summary["ref_miou"] == pytest.approx(25.0) and summary["ref_acc@0.5"] == pytest.approx(50.0)
    per = tables["per_category"].set_index(["type", "category", "metric"])["score"]
    assert per[("binary", "presence", "accuracy")] == pytest.approx(50.0)
    assert per[("bounding box", "point", "miou")] == 0.0
    assert tables["captioning"].iloc[0]["BLEU-3"] == pytest.approx(100.0)
    lenient = evaluate_predictions(frame, mode="lenient")["summary"].iloc[0]
    assert lenient["binary"] == pytest.approx(100.0)
    with pytest.raises(KeyError, match="prediction"):
        evaluate_predictions(frame.drop(columns="prediction"))
