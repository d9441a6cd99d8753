import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rsim.hyvic.checkpoint import load_model, model_config, save_model
from rsim.hyvic.cli import main
from rsim.hyvic.codec import decode_to_array
from rsim.hyvic.data.testing import write_geotiff_fixture
from rsim.hyvic.evaluate import bd_table, select_best
from rsim.hyvic.models.hyvic import HyVIC, HyVICConfig

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


def test_fit_export_compress_decompress_rd(tmp_path, capsys):
    tif = write_geotiff_fixture(tmp_path / "img.tif", bands=4, height=48, width=40)
    run = tmp_path / "run"
    code = main(
        [
            "fit",
            "--config",
            str(DEMO),
            "--data.init_args.root",
            str(tif),
            "--data.init_args.patch_size",
            "16",
            "--data.init_args.crop_size",
            "16",
            "--data.init_args.batch_size",
            "2",
            "--trainer.max_steps",
            "2",
            "--trainer.max_time",
            "null",
            "--trainer.check_val_every_n_epoch",
            "1",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.default_root_dir",
            str(run),
        ]
    )
    assert code == 0
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert state["hyper_parameters"]["model_config"]["in_channels"] == 4
    assert main(["export", str(ckpt), str(tmp_path / "m.pt")]) == 0
    model = load_model(tmp_path / "m.pt")
    assert model_config(model)["num_stages"] == 2
    # trained weights differ from a fresh init with the same seed
    torch.manual_seed(0)
    fresh = HyVIC(HyVICConfig(**model_config(model)))
    assert not torch.equal(fresh.g_a[0].weight, model.g_a[0].weight)

    assert main(["compress", str(tif), str(tmp_path / "x.hyv"), "--model", str(ckpt), "--tile", "32"]) == 0
    assert main(["decompress", str(tmp_path / "x.hyv"), str(tmp_path / "rec.tif"), "--model", str(ckpt)]) == 0
    with rasterio.open(tmp_path / "rec.tif") as r:
        assert (r.count, r.height, r.width, r.dtypes[0]) == (4, 48, 40, "uint16")
    dec, _ = decode_to_array(model, tmp_path / "x.hyv")  # exported file and checkpoint are the same model
    assert dec.shape == (4, 48, 40)

    out = tmp_path / "rd.json"
    assert (
        main(
            [
                "rd",
                "--models",
                str(tmp_path / "m.pt"),
                "--input",
                str(tif),
                "--tile",
                "32",
                "--out",
                str(out),
                "--plot",
                str(tmp_path / "rd.png"),
            ]
        )
        == 0
    )
    curve = json.loads(out.read_text())
    p = curve["points"][0]
    assert p["cr"] == pytest.approx(32 / p["bpppc"])
    assert p["bytes"] == (tmp_path / "x.hyv").stat().st_size
    assert (tmp_path / "rd.png").read_bytes()[:4] == b"\x89PNG"
    assert "PSNR" in capsys.readouterr().out


def _curve(name, shift, sa_shift=0.0, cfg=None):
    rates = [0.1, 0.2, 0.4, 0.8, 1.6]
    return {
        "name": name,
        "config": cfg or {},
        "points": [
            {"bpppc": r, "psnr": 30 + 5 * np.log2(r / 0.1) + shift, "sa": 5.0 / (1 + i) + sa_shift}
            for i, r in enumerate(rates)
        ],
    }


def test_bd_table_and_selection():
    anchor = _curve("anchor", 0.0)
    a = _curve("S1", 1.5, -0.2, {"num_stages": 1, "width": 64, "latent_channels": 32})
    b = _curve("S2", 0.5, 0.1, {"num_stages": 2, "width": 64, "latent_channels": 32})
    rows = bd_table([a, b], anchor)
    assert rows[0]["bd_psnr"] == pytest.approx(1.5, abs=1e-6)
    assert rows[1]["bd_psnr"] == pytest.approx(0.5, abs=1e-6)
    assert rows[0]["bd_sa"] == pytest.approx(-0.2, abs=1e-6)
    assert rows[0]["bd_rate"] < 0 < rows[0]["bd_psnr"]
    assert select_best(rows)["name"] == "S1"
    assert select_best(rows, "bd_sa")["name"] == "S1"


def test_select_verb_writes_table_json_and_plot(tmp_path, capsys):
    paths = []
    for c in (
        _curve("anchor", 0.0),
        _curve("S0 N128 M64", -0.3, cfg={"num_stages": 0, "width": 128, "latent_channels": 64}),
        _curve("S2 N128 M64", 0.8, cfg={"num_stages": 2, "width": 128, "latent_channels": 64}),
    ):
        p = tmp_path / f"{c['name'].replace(' ', '_')}.json"
        p.write_text(json.dumps(c))
        paths.append(str(p))
    code = main(
        [
            "select",
            "--curves",
            *paths[1:],
            "--anchor",
            paths[0],
            "--out",
            str(tmp_path / "sel.md"),
            "--plot",
            str(tmp_path / "sel.png"),
        ]
    )
    assert code == 0
    table = (tmp_path / "sel.md").read_text()
    assert "| S2 N128 M64 | 2 | 128 | 64 | +0.800 |" in table and "**yes**" in table
    assert json.loads((tmp_path / "sel.json").read_text())["selected"] == "S2 N128 M64"
    assert (tmp_path / "sel.png").stat().st_size > 1000
    assert "selected: S2 N128 M64" in capsys.readouterr().out


def test_select_from_models_needs_four_rd_points_per_config(tmp_path):
    tif = write_geotiff_fixture(tmp_path / "img.tif", bands=4, height=16, width=16)
    anchor = tmp_path / "anchor.json"
    anchor.write_text(json.dumps(_curve("anchor", 0.0)))
    files = []
    for i in range(2):
        torch.manual_seed(i)
        save_model(
            tmp_path / f"m{i}.pt",
            HyVIC(HyVICConfig(in_channels=4, num_stages=0, width=8, latent_channels=4 + 4 * i, depths=[], heads=[])),
        )
        files.append(str(tmp_path / f"m{i}.pt"))
    # one model per configuration: a single RD point cannot give a Bjøntegaard delta -> clear error
    with pytest.raises(ValueError, match="at least 4"):
        main(
            [
                "select",
                "--models",
                *files,
                "--input",
                str(tif),
                "--tile",
                "16",
                "--anchor",
                str(anchor),
                "--out",
                str(tmp_path / "sel.md"),
            ]
        )


def test_unknown_model_file_errors(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    from rsim.core.errors import DataFormatError

    with pytest.raises(DataFormatError, match=r"bad\.pt"):
        load_model(tmp_path / "bad.pt")
    torch.save({"foo": 1}, tmp_path / "dict.pt")
    with pytest.raises(DataFormatError, match="'architecture' absent"):
        load_model(tmp_path / "dict.pt")


@pytest.mark.parametrize(
    ("configs", "expected"),
    [
        (
            ["hyspecnet_paper.yaml", "ladder/lambda_300.yaml"],
            {"lmbda: 300.0", "in_channels: 202", "dataset: hyspecnet"},
        ),
        (
            ["hyspecnet_paper.yaml", "ladder/lambda_1000.yaml", "baseline_mbt2018_mean.yaml"],
            {"architecture: mbt2018-mean"},
        ),
        (["mlretset_paper.yaml", "ladder/lambda_100000.yaml"], {"in_channels: 369", "crop_size: 96"}),
    ],
)
def test_recipe_configs_parse(configs, expected, capsys):
    args = ["fit"]
    for c in configs:
        args += ["--config", str(DEMO.parent / c)]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--print_config"])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    assert all(e in out for e in expected), out


def test_ladder_has_eight_points():
    values = sorted(float(p.stem.split("_")[1]) for p in (DEMO.parent / "ladder").glob("lambda_*.yaml"))
    from rsim.hyvic.tasks import LAMBDA_LADDER

    assert values == sorted(LAMBDA_LADDER)


def test_monotone_hull_and_select_with_hull(tmp_path, capsys):
    from rsim.hyvic.evaluate import monotone_hull

    pts = [
        {"bpppc": 0.1, "psnr": 20.0, "sa": 9.0},
        {"bpppc": 0.2, "psnr": 19.0, "sa": 9.5},  # dominated: more bits, less PSNR
        {"bpppc": 0.3, "psnr": 24.0, "sa": 6.0},
        {"bpppc": 0.3, "psnr": 23.0, "sa": 6.5},  # same rate, lower PSNR
        {"bpppc": 0.6, "psnr": 27.0, "sa": 4.0},
        {"bpppc": 1.2, "psnr": 29.0, "sa": 3.0},
    ]
    hull, dropped = monotone_hull(pts)
    assert [p["bpppc"] for p in hull] == [0.1, 0.3, 0.6, 1.2]
    assert [(p["bpppc"], p["psnr"]) for p in dropped] == [(0.2, 19.0), (0.3, 23.0)]
    curve = {"name": "S1 N8 M8", "config": {"num_stages": 1}, "points": pts}
    anchor = _curve("anchor", -3.0)
    (tmp_path / "c.json").write_text(json.dumps(curve))
    (tmp_path / "a.json").write_text(json.dumps(anchor))
    args = ["select", "--curves", str(tmp_path / "c.json"), "--anchor", str(tmp_path / "a.json")]
    with pytest.raises(ValueError, match="strictly"):  # repeated rate and falling PSNR are refused
        main([*args, "--out", str(tmp_path / "raw.md")])
    assert main([*args, "--out", str(tmp_path / "sel.md"), "--hull"]) == 0
    sel = json.loads((tmp_path / "sel.json").read_text())
    assert sel["hull"] is True and sel["rows"][0]["dropped"] == 2 and sel["rows"][0]["anchor_dropped"] == 0
    expected = bd_table([{**curve, "points": hull}], anchor)[0]["bd_psnr"]
    assert sel["rows"][0]["bd_psnr"] == pytest.approx(expected)
    assert "monotone hull" in (tmp_path / "sel.md").read_text()
