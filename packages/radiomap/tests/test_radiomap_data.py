import json
import shutil

import numpy as np
import pytest
import torch
from rsim.core.errors import DataFormatError
from rsim.radiomap.data import RadioMapDataModule, RadioMapDataset, RadioMapLayout, db_to_gray, gray_to_db
from rsim.radiomap.data.features import augment_joint, sample_observations
from rsim.radiomap.generator import GeneratorConfig, generate_dataset

CFG = GeneratorConfig(n_copies=2, severities=(0.5,), seed=3, write_properties=True)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("rm") / "data"
    assert generate_dataset(out, 3, CFG, processes=False, n_workers=1, show_progress=False) == 3
    return out


def test_layout_reads_all_encodings(root):
    lay = RadioMapLayout(root)
    assert len(lay.heights) == 29 and lay.raster_size == 256 and lay.map_size == 32
    split = lay.read_split()
    pairs = sorted(p for s in split.values() for p in s)
    assert pairs == [(e, t) for e in range(3) for t in range(5)]
    envs = [{e for e, _ in split[s]} for s in ("train", "val", "test")]
    assert not (envs[0] & envs[1]) and not (envs[0] & envs[2]) and not (envs[1] & envs[2])
    classes = lay.read_environment(0, "classes")
    assert classes.shape == (29, 256, 256) and classes.dtype == np.uint8 and 0 < classes.max() < 5
    assert (classes[28] == 0).all()  # 2.8 m is above the 2.76 m ceiling
    assert lay.read_environment(0, "properties").shape == (87, 256, 256)
    assert lay.read_environment(0, "none").shape == (0, 256, 256)
    tx = lay.read_tx(0)
    assert sorted(tx) == list(range(5)) and all(0.5 <= z <= 2.5 for _, _, z in tx.values())
    t = lay.read_target(0, 0)
    assert t.shape == (32, 32) and (t == 0).any() is not None and (t > 0).sum() > 100
    assert lay.count_copies(0) == 2


def test_gray_db_roundtrip():
    db = np.array([-80.0, -71.0, -41.5, -12.0, 0.0])
    g = db_to_gray(db)
    assert g.tolist() == [0, 0, 128, 255, 255]
    assert np.allclose(gray_to_db(g), [-71, -71, -71 + 128 / 255 * 59, -12, -12])
    assert np.allclose(gray_to_db(np.array([0.5])), -41.5)


def test_bad_files_name_the_file(root, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(root, bad)
    lay = RadioMapLayout(bad)
    (bad / "radio_maps" / "project1-2.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataFormatError, match="project1-2.png"):
        lay.read_target(1, 2)
    (bad / "environments" / "project2_tx.json").unlink()
    with pytest.raises(FileNotFoundError, match="project2_tx.json"):
        lay.read_tx(2)
    (bad / "environments" / "project0_tx.json").write_text(json.dumps({"0": [1.0, 2.0]}))
    with pytest.raises(DataFormatError, match=r"project0_tx.json: Tx '0'"):
        lay.read_tx(0)
    from PIL import Image

    Image.fromarray(np.zeros((16, 16), np.uint8)).save(bad / "environments" / "project1_height1.0_classes.png")
    with pytest.raises(DataFormatError, match=r"height1.0_classes.png: expected size"):
        lay.read_environment(1)
    (bad / "rm_processing_parameters.json").write_text(json.dumps({"map_size": 32, "pl_trnc": -80, "pl_max": -12}))
    with pytest.raises(DataFormatError, match="pl_trnc"):
        RadioMapLayout(bad)


def test_snda_copies_change_input_not_target(root):
    lay = RadioMapLayout(root)
    pairs = [(0, t) for t in range(5)]
    clean = RadioMapDataset(lay, pairs)
    torch.manual_seed(0)
    snda = RadioMapDataset(lay, pairs, copy_mode="random")
    det = RadioMapDataset(lay, pairs, copy_mode="deterministic")
    a, b = clean[1], snda[1]
    assert torch.equal(a["target"], b["target"])
    assert not torch.equal(a["tx"], b["tx"]) and not torch.equal(a["env"], b["env"])
    assert 0 < float((a["tx"] - b["tx"]).norm()) <= 0.5 + 1e-4  # moved by at most the severity
    assert det.copy_index(3) == np.random.RandomState(3000).randint(2) == det.copy_index(3)
    only_tx = RadioMapDataset(lay, pairs, copy_mode="deterministic", perturb_rasters=False)
    assert torch.equal(only_tx[2]["env"], clean[2]["env"])
    with pytest.raises(FileNotFoundError, match="no perturbed copies"):
        RadioMapDataset(RadioMapLayout(root, copies_dir="sev9"), pairs, copy_mode="random")


def test_datamodule_batches(root):
    dm = RadioMapDataModule(str(root), snda=True, batch_size=4, eval_obs_fraction=0.05)
    assert dm.num_channels == 32
    raw = next(iter(dm.val_dataloader()))
    b1 = dm.prepare_batch(raw, training=False)
    b2 = dm.prepare_batch(raw, training=False)
    assert b1["input"].shape[1:] == (32, 256, 256) and b1["target"].shape[1:] == (1, 32, 32)
    assert torch.equal(b1["obs"], b2["obs"])  # evaluation draws are seeded per sample
    assert not (b1["obs"] & ~b1["mask"]).any()
    n_valid = b1["mask"].flatten(1).sum(1).float()
    assert torch.equal(b1["obs"].flatten(1).sum(1).float(), torch.round(0.05 * n_valid).clamp_min(1))
    torch.manual_seed(0)
    tr = dm.prepare_batch(next(iter(dm.train_dataloader())), training=True)
    # the observation channel is the target at observed cells, after the joint flip/rot90
    obs_channel = tr["input"][:, 31:32, ::8, ::8]
    assert torch.allclose(obs_channel, torch.where(tr["obs"], tr["target"], torch.zeros_like(tr["target"])))
    assert torch.isclose(tr["input"][:, 29].amax((-1, -2)) * 2.76, tr["tx"][:, 2]).all()  # one-hot = z / 2.76
    m = RadioMapDataModule(str(root), encoding="binary", obs_mask_channel=True, fspl_channel=True)
    assert m.num_channels == 29 + 3 + 2
    bb = m.prepare_batch(raw, training=False)
    assert bb["input"].shape[1] == 34 and set(bb["input"][:, :29].unique().tolist()) <= {0.0, 1.0}


def test_augment_joint_is_consistent():
    x = torch.arange(2 * 16.0).view(2, 1, 4, 4)
    y = x.clone()
    ax, ay = augment_joint([x, y], torch.tensor([True, False]), torch.tensor([1, 3]))
    assert torch.equal(ax, ay)
    assert torch.equal(ax[0, 0], torch.rot90(x[0, 0].flip(-1), 1))
    assert torch.equal(ax[1, 0], torch.rot90(x[1, 0], 3))


def test_sample_observations_counts():
    valid = torch.zeros(3, 1, 32, 32, dtype=torch.bool)
    valid[:, :, :10] = True
    obs = sample_observations(valid, torch.tensor([0.0, 0.001, 0.1]), torch.Generator().manual_seed(0))
    assert obs.flatten(1).sum(1).tolist() == [0, 1, 32]
    assert not (obs & ~valid).any()
