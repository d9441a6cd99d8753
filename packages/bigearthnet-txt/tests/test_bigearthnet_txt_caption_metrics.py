"""METEOR (Java jar via pycocoevalcap) and BERTScore (torchmetrics, local tiny random encoder)."""

from pathlib import Path

import pandas as pd
import pytest
import torch
from rsim.bigearthnet_txt import evaluate as ev
from rsim.bigearthnet_txt.cli import main
from rsim.bigearthnet_txt.data.testing import save_tiny_model, word_tokenizer
from rsim.bigearthnet_txt.evaluate import bert_score, evaluate_predictions, meteor, meteor_scores

torch.set_num_threads(1)
CANDS = ["arable land dominates the scene", "pastures lie to the east of the forest", "water"]
REFS = [["arable land dominates the scene"], ["mixed forest covers the north"], ["urban fabric"]]


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"type": "captioning", "category": "None", "output": [r[0] for r in REFS], "prediction": CANDS})


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bert")
    tok = word_tokenizer([*CANDS, *(r[0] for r in REFS)], out, bert_style=True)
    return save_tiny_model(out, "bert", len(tok), seed=0)


def _manual_bertscore(model_path: Path, cand: str, ref: str) -> tuple[float, float, float]:
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    model = AutoModel.from_pretrained(model_path, local_files_only=True).eval()

    def emb(text: str) -> torch.Tensor:
        ids = tok(text, return_tensors="pt")
        with torch.no_grad():
            h = model(**ids, output_hidden_states=True).hidden_states[-1][0, 1:-1]  # drop [CLS]/[SEP]
        return torch.nn.functional.normalize(h, dim=-1)

    sim = emb(cand) @ emb(ref).T
    p, r = float(sim.max(1).values.mean()), float(sim.max(0).values.mean())
    return p, r, 2 * p * r / (p + r)


def test_bertscore_local_model_matches_greedy_cosine_matching(tiny_bert: Path) -> None:
    scores = bert_score(CANDS[:2], REFS[:2], tiny_bert, device="cpu")
    expected = [_manual_bertscore(tiny_bert, c, r[0]) for c, r in zip(CANDS[:2], REFS[:2], strict=True)]
    assert expected[0] == pytest.approx((1.0, 1.0, 1.0), abs=1e-5)  # identical caption
    assert expected[1][2] < 0.99
    assert scores["precision"] == pytest.approx(sum(e[0] for e in expected) / 2, abs=1e-4)
    assert scores["recall"] == pytest.approx(sum(e[1] for e in expected) / 2, abs=1e-4)
    assert scores["f1"] == pytest.approx(sum(e[2] for e in expected) / 2, abs=1e-4)
    table = evaluate_predictions(_frame(), bertscore_model=tiny_bert)["captioning"].iloc[0]
    assert 0 < table["BERTScore-F1"] < 100 and {"BERTScore-P", "BERTScore-R"} <= set(table.index)
    single = bert_score(CANDS[1:2], REFS[1:2], tiny_bert, device="cpu")
    assert single["f1"] == pytest.approx(expected[1][2], abs=1e-4)
    multi = bert_score(CANDS[1:2], [[REFS[2][0], REFS[1][0]]], tiny_bert, device="cpu")  # best reference counts
    assert multi["f1"] >= single["f1"] - 1e-6
    with pytest.raises(FileNotFoundError, match="no config.json"):
        bert_score(CANDS, REFS, tiny_bert / "absent")


def test_sbert_cosine_local_model(tiny_bert: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert, local_files_only=True)
    model = AutoModel.from_pretrained(tiny_bert, local_files_only=True).eval()

    def emb(text: str) -> torch.Tensor:
        with torch.no_grad():
            hidden = model(**tok(text, return_tensors="pt")).last_hidden_state[0]
        return torch.nn.functional.normalize(hidden.mean(0), dim=0)  # every token attended: plain mean

    expected = float(emb(CANDS[1]) @ emb(REFS[1][0]))
    assert ev.sbert_cosine(CANDS[:1], REFS[:1], tiny_bert, device="cpu") == pytest.approx(1.0, abs=1e-5)
    assert ev.sbert_cosine(CANDS[1:2], REFS[1:2], tiny_bert, device="cpu") == pytest.approx(expected, abs=1e-5)
    both = ev.sbert_cosine(CANDS[1:2], [[REFS[1][0], CANDS[1]]], tiny_bert, device="cpu")  # best reference
    assert both == pytest.approx(1.0, abs=1e-5)
    table = evaluate_predictions(_frame(), sbert_model=tiny_bert)["captioning"].iloc[0]
    assert 0 < table["SBERT-cos"] <= 100
    with pytest.raises(FileNotFoundError, match="SBERT model folder"):
        ev.sbert_cosine(CANDS, REFS, tiny_bert / "absent")


def test_meteor_needs_java(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(ev.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="Java runtime"):
        meteor(CANDS, REFS)
    with pytest.raises(RuntimeError, match="Java runtime"):
        evaluate_predictions(_frame(), with_meteor=True)
    frame = _frame()
    for col in ("ID", "s1_name", "patch_id", "input", "split", "latitude", "longitude", "country", "season"):
        frame[col] = "x"
    frame["climate_zone"] = "Cfb"
    frame.to_parquet(tmp_path / "pred.parquet")
    assert main(["evaluate", str(tmp_path / "pred.parquet")]) == 0  # auto: skipped with a note
    out = capsys.readouterr()
    assert "no Java runtime" in out.err and "METEOR" not in out.out and "CIDEr" in out.out
    with pytest.raises(RuntimeError, match="Java runtime"):
        main(["evaluate", str(tmp_path / "pred.parquet"), "--meteor", "on"])


@pytest.mark.slow
@pytest.mark.skipif(not ev.java_available(), reason="METEOR needs a Java runtime")
def test_meteor_jar() -> None:  # two jar starts, 5-20 s each: the jar loads its paraphrase table
    cands = [*CANDS, "the cats sat", "the dog sat"]
    refs = [*REFS, ["the cat sat"], ["the cat sat"]]
    corpus, per = meteor_scores(cands, refs)
    assert per[0] == pytest.approx(1.0) and per[2] == 0.0 and 0.0 < per[1] < 0.5
    assert min(per) < corpus < max(per)
    assert per[3] > per[4]  # "cats" matches "cat" through the stem module, "dog" does not
    table = evaluate_predictions(_frame(), with_meteor=True)["captioning"].iloc[0]
    assert 100 * per[2] < table["METEOR"] < 100 * per[0]  # corpus score of the first three captions
