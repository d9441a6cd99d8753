"""Stumpf / Lyzenga least squares, random forest, and the `baselines` verb."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rsim.seabednet.baselines import (
    LyzengaModel,
    RandomForestModel,
    StumpfModel,
    collect_pixels,
    run_baselines,
)
from rsim.seabednet.cli import main
from rsim.seabednet.data.magicbathynet import MagicBathyNetReader
from rsim.seabednet.data.testing import write_magicbathynet


def test_least_squares_recover_known_models() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0.05, 0.9, (500, 3)).astype(np.float32)
    stumpf = StumpfModel()
    y = 12.0 * stumpf._ratio(x)[:, 0] - 11.0
    stumpf.fit(x, y)
    np.testing.assert_allclose(stumpf.coef_, [12.0, -11.0], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(stumpf.predict(x), y, atol=1e-3)
    y2 = 3.0 - 2.0 * np.log(x[:, 0]) + 0.5 * np.log(x[:, 2])
    lyz = LyzengaModel().fit(x, y2)
    np.testing.assert_allclose(lyz.coef_, [-2.0, 0.0, 0.5, 3.0], atol=1e-4)


def test_baselines_beat_mean_on_synthetic(tmp_path: Path) -> None:
    root = write_magicbathynet(tmp_path, num_patches=6, seed=1)
    reader = MagicBathyNetReader(root, "agia_napa", "spot6")
    train, test = reader.split("bathymetry")
    _, y_te = collect_pixels(reader, test)
    rows = run_baselines(
        reader,
        train,
        test,
        [StumpfModel(), LyzengaModel(), RandomForestModel(n_estimators=5, max_depth=8, max_samples=2000)],
    )
    assert [r["method"] for r in rows] == ["Stumpf log-ratio", "Lyzenga linear", "Random forest"]
    for r in rows:
        assert float(r["rmse"]) < float(np.std(y_te))  # better than predicting the mean depth
        assert float(r["mae"]) <= float(r["rmse"])
        assert int(float(r["n_test"])) == y_te.size


def test_baselines_verb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_magicbathynet(tmp_path / "d", sites=("puck_lagoon",), modalities=("s2",), num_patches=5)
    out = tmp_path / "table.md"
    code = main(["baselines", "--root", str(root), "--site", "puck_lagoon", "--modality", "s2", "--out", str(out)])
    assert code == 0
    text = out.read_text()
    assert "| Lyzenga linear |" in text and "| Random forest |" in text
    assert "4 train, 1 test" in capsys.readouterr().out
    assert main(["baselines", "--root", str(tmp_path / "nothing")]) == 1
