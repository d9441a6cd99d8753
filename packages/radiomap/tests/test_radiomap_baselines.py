import json

import numpy as np
import pytest
import torch
from rsim.core.errors import DataFormatError
from rsim.radiomap.baselines import (
    BASELINES,
    evaluate_baselines,
    fspl_db,
    fspl_gain_offset,
    fspl_offset,
    grid_xy,
    raytracing_offset,
    rbf_interpolation,
    thin_plate,
)
from rsim.radiomap.data.measurements import evaluate_campaign, load_campaign

XY = grid_xy(32, 9.6)
TX = np.array([3.0, 4.0, 1.5])
RNG = np.random.default_rng(0)
IDX = RNG.choice(len(XY), 40, replace=False)


def test_fspl_fits_recover_offset_and_gain():
    f = fspl_db(TX, XY)
    assert np.allclose(fspl_offset(XY[IDX], f[IDX] - 7.0, TX, XY), f - 7.0)
    assert np.allclose(fspl_gain_offset(XY[IDX], 1.3 * f[IDX] + 5.0, TX, XY), 1.3 * f + 5.0)
    assert np.allclose(fspl_offset(XY[:0], f[:0], TX, XY), f)  # no observation: plain FSPL


def test_interpolators_reproduce_simple_fields():
    lin = -50.0 + 0.8 * XY[:, 0] - 1.1 * XY[:, 1]
    assert np.allclose(thin_plate(0.0)(XY[IDX], lin[IDX], TX, XY), lin, atol=1e-6)
    const = np.full(len(XY), -44.0)
    assert np.allclose(rbf_interpolation(1.0)(XY[IDX], const[IDX], TX, XY), const)
    rt = lin + 3.0
    assert np.allclose(raytracing_offset(rt)(XY[IDX], lin[IDX], TX, XY), lin)


def test_evaluate_baselines_on_fspl_world():
    f = np.clip(fspl_db(TX, XY), -71, -12).reshape(32, 32) - 4.0  # the world is FSPL minus a 4 dB offset
    target = torch.from_numpy((f + 71) / 59).float()[None, None]
    mask = torch.ones_like(target, dtype=torch.bool)
    obs = torch.zeros_like(mask)
    obs.view(-1)[torch.from_numpy(IDX)] = True
    batch = {"target": target, "mask": mask, "obs": obs, "tx": torch.from_numpy(TX).float()[None]}
    res = evaluate_baselines([batch], BASELINES)
    assert res["fspl"] == pytest.approx(4.0, abs=0.05)
    assert res["fspl+offset"] < 0.05 and res["fspl+gain+offset"] < 0.05
    assert res["thin_plate"] < res["fspl"]


def _campaign(tmp_path):
    data = {"tx1": {str(a): {f"p{i}": {"coordinates": [a * 3 + i, 5], "pl": -40.0 - a - i,
                                       "percentage_samples_available": 40.0 if i == 2 else 90.0}
                             for i in range(3)} for a in range(1, 7)}}  # fmt: skip
    path = tmp_path / "campaign_2501.json"
    path.write_text(json.dumps(data))
    return path


def test_measurement_loader_and_protocol(tmp_path):
    camp = load_campaign(_campaign(tmp_path))
    assert all(len(points) == 2 for points in camp["tx1"].values())  # the 40 % point is dropped
    truth = np.full((32, 32), np.nan)
    for points in camp["tx1"].values():
        for p in points:
            truth[p.row, p.col] = p.pl
    perfect = evaluate_campaign(camp, lambda tx, rc, db: truth, obs_areas=["1", "2", "3", "4"], gt_areas=["5", "6"],
                                n_draws=5)  # fmt: skip
    assert perfect == 0.0
    offset = evaluate_campaign(camp, lambda tx, rc, db: truth + 2.0, obs_areas=["1"], gt_areas=["5", "6"], n_draws=3)
    assert offset == pytest.approx(2.0)


def test_measurement_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        load_campaign(tmp_path / "nothing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"tx": {"1": {"p": {"coordinates": [1, 2], "percentage_samples_available": 99}}}}))
    with pytest.raises(DataFormatError, match=r"bad.json: Tx tx area 1 point p: missing field 'pl'"):
        load_campaign(bad)
    bad.write_text(
        json.dumps({"tx": {"1": {"p": {"coordinates": [40, 2], "pl": -50, "percentage_samples_available": 99}}}})
    )
    with pytest.raises(DataFormatError, match="32² grid"):
        load_campaign(bad)
