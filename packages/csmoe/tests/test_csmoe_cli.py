import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from rsim.csmoe.cli import main
from rsim.csmoe.tasks import CSMoEPretrainTask
from safetensors.torch import load_file

REF = Path(__file__).resolve().parents[3] / ".." / "shared" / "reference" / "csmae"
TINY_ARGS = [
    "--vit-size",
    "tiny",
    "--embed-dim",
    "48",
    "--num-heads",
    "3",
    "--specific-depth",
    "2",
    "--shared-depth",
    "1",
]
DEC_ARGS = ["--decoder-embed-dim", "32", "--decoder-depth", "1", "--decoder-num-heads", "2"]

torch.set_num_threads(1)


def test_help_lists_verbs(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in ("import-weights", "sample", "profile", "retrieval", "make-demo-data", "fit"):
        assert verb in out


@pytest.mark.skipif(not REF.is_dir(), reason="reference fixtures absent")
def test_import_weights_roundtrip(tmp_path, capsys):
    folder = REF / "fixture_a" / "variant_randomized_norm_bias"
    sd = load_file(str(folder / "state_dict.safetensors"))
    ckpt = tmp_path / "orig.ckpt"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in sd.items()}, "epoch": 1}, ckpt)
    out = tmp_path / "csmae.safetensors"
    assert main(["import-weights", str(ckpt), str(out), *TINY_ARGS, *DEC_ARGS]) == 0
    assert "fresh: decoder_s1_to_s2" in capsys.readouterr().out  # decoders were not in the backbone-only file
    task = CSMoEPretrainTask(
        vit_size="tiny",
        embed_dim=48,
        num_heads=3,
        specific_depth=2,
        shared_depth=1,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2,
        init_weights=str(out),
    )
    x = torch.from_numpy(np.load(REF / "fixture_a" / "input.npy"))
    with torch.no_grad():
        feats = task.eval()(x)
    ref = torch.from_numpy(np.load(folder / "output_s2.npy"))
    torch.testing.assert_close(feats["s2"], ref, atol=1e-5, rtol=1e-4)
    # into a CSMoE model: experts upcycled, routing fresh
    moe_out = tmp_path / "csmoe.safetensors"
    assert (
        main(
            [
                "import-weights",
                str(ckpt),
                str(moe_out),
                *TINY_ARGS,
                *DEC_ARGS,
                "--moe-layers",
                "shared",
                "--num-experts",
                "2",
                "--slots-per-expert",
                "4",
            ]
        )
        == 0
    )
    moe_sd = load_file(str(moe_out))
    torch.testing.assert_close(moe_sd["backbone.blocks.0.mlp.fc1_weight"][1], sd["blocks.0.mlp.fc1.weight"].t())


def test_import_weights_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape("missing.ckpt")):
        main(["import-weights", str(tmp_path / "missing.ckpt"), str(tmp_path / "o.safetensors")])


def test_sample_verb(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n = 300
    pool = ["Arable land", "Pastures", "Coniferous forest", "Marine waters"]
    meta = pd.DataFrame(
        {
            "patch_id": [f"p{i}" for i in range(n)],
            "labels": [list(rng.choice(pool, size=int(rng.integers(1, 3)), replace=False)) for _ in range(n)],
            "split": rng.choice(["train", "validation"], size=n),
            "s1_name": [f"s1_{i}" for i in range(n)],
        }
    )
    meta.to_parquet(tmp_path / "metadata.parquet")
    pd.DataFrame({"patch_id": meta["patch_id"], "climate_zone": rng.choice(["Cfb", "Dfc", "BSk"], size=n)}).to_csv(
        tmp_path / "zones.csv", index=False
    )
    out, report = tmp_path / "sel.csv", tmp_path / "report.json"
    code = main(
        [
            "sample",
            "--metadata",
            str(tmp_path / "metadata.parquet"),
            "--climate-table",
            str(tmp_path / "zones.csv"),
            "--budget",
            "40",
            "--allocation",
            "capped_proportional",
            "--cap",
            "0.2",
            "--out",
            str(out),
            "--report",
            str(report),
        ]
    )
    assert code == 0
    sel = pd.read_csv(out)
    assert len(sel) == 40 and set(sel.columns) == {"patch_id", "s1_name", "split", "stratum"}
    assert (sel["split"] == "train").all()
    rep = json.loads(report.read_text())
    assert rep["stratified"]["size"] == rep["random"]["size"] == 40
    assert "stratified" in capsys.readouterr().out
    assert (
        main(
            [
                "sample",
                "--metadata",
                str(tmp_path / "nope.parquet"),
                "--budget",
                "3",
                "--out",
                str(out),
                "--report",
                str(report),
            ]
        )
        == 2
    )


def test_profile_verb(capsys):
    assert main(["profile", *TINY_ARGS, "--json"]) == 0
    dense = json.loads(capsys.readouterr().out)
    assert (
        main(
            [
                "profile",
                *TINY_ARGS,
                "--moe-layers",
                "shared",
                "--num-experts",
                "2",
                "--slots-per-expert",
                "8",
                "--json",
                "--throughput",
                "2",
                "--repeats",
                "1",
            ]
        )
        == 0
    )
    moe = json.loads(capsys.readouterr().out)
    assert moe["flops_per_image"] < dense["flops_per_image"]
    assert moe["total_params"] > dense["total_params"] and moe["images_per_s_cpu"] > 0
