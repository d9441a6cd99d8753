import numpy as np
import pytest
import torch
from PIL import Image
from rsim.core.errors import DataFormatError, MissingKeyError
from rsim.sea_undistort.data import (
    PairTransform,
    SeaUndistortDataModule,
    SeaUndistortDataset,
    glint_mask,
    glint_mask_batch,
    gray,
    load_id_list,
    load_scene_settings,
    split_ids,
)
from rsim.sea_undistort.data.testing import write_sea_undistort_fixture


@pytest.fixture(scope="module")
def fixture(tmp_path_factory: pytest.TempPathFactory):
    return write_sea_undistort_fixture(tmp_path_factory.mktemp("su"), num_scenes=12, size=48)


def test_layout_and_lists(fixture):
    names = sorted(p.name for p in fixture.root.iterdir())
    assert "render_0000.png" in names and "render_0000_no_waves.png" in names
    assert "render_0000_no_sunglint.png" in names and "render_0000_ground.png" in names
    assert {"scene_settings.json", "blacklist.txt", "test_list.txt"} <= set(names)
    assert load_id_list(fixture.root / "test_list.txt") == {"0005", "0003"}  # zero-padded like the released loader
    settings = load_scene_settings(fixture.root / "scene_settings.json", {"depth": "mean_depth_m"})
    assert set(settings) == set(fixture.ids) and -8 <= settings["0001"]["depth"] <= -0.5
    with pytest.raises(MissingKeyError, match="no key 'nope'"):
        load_scene_settings(fixture.root / "scene_settings.json", {"x": "nope"})


def test_split_logic_matches_released_rule():
    ids = [f"{i:04d}" for i in range(40)]
    parts = split_ids(ids, blacklist={"0001", "0002"}, test_list={"0002", "0007"}, seed=42)
    assert all("0001" not in v for v in parts.values()) and "0002" not in parts["test"]
    assert "0007" in parts["test"]
    remaining = sorted(set(ids) - {"0001", "0002", "0007"})
    np.random.default_rng(42).shuffle(remaining)
    assert parts["train"] == sorted(remaining[:29]) and parts["val"] == sorted(remaining[29:32])
    assert parts["test"] == sorted([*remaining[32:], "0007"])
    assert split_ids(ids, seed=1) != split_ids(ids, seed=2)


def test_dataset_splits_and_pair_modes(fixture):
    splits = {s: SeaUndistortDataset(fixture.root, s) for s in ("train", "val", "test")}
    all_ids = [r.scene_id for ds in splits.values() for r in ds.samples]
    assert sorted(all_ids) == sorted(set(fixture.ids) - {"0003"})  # blacklist wins over the test list
    assert "0005" in [r.scene_id for r in splits["test"].samples]
    assert len(splits["train"]) == int(10 * 0.8)
    ds = SeaUndistortDataset(fixture.root, "train", pair_mode="no_sunglint_no_waves")
    lq_path, gt_path = ds.paths(0)
    assert lq_path.name.endswith("_no_sunglint.png") and gt_path.name.endswith("_no_waves.png")
    sample = ds[0]
    assert sample["lq"].shape == (3, 48, 48) and sample["lq"].dtype == np.uint8
    assert sample["no_sunglint"].shape == sample["distorted"].shape == (3, 48, 48)  # raw renders for the mask
    with pytest.raises(ValueError, match="pair_mode"):
        SeaUndistortDataset(fixture.root, "train", pair_mode="bogus")  # type: ignore[arg-type]


def test_glint_mask_soft_ramp(fixture):
    ds = SeaUndistortDataset(fixture.root, "test")
    index = [r.scene_id for r in ds.samples].index("0005")
    sample = ds[index]
    pair = [torch.from_numpy(sample[k])[None] for k in ("lq", "no_sunglint")]
    mask = glint_mask_batch(*pair)[0, 0].numpy()  # what the data module computes on the device
    assert np.array_equal(mask, glint_mask(sample["lq"].transpose(1, 2, 0), sample["no_sunglint"].transpose(1, 2, 0)))
    cy, cx = fixture.glint_centres["0005"]
    assert mask[cy, cx] == 1.0 and mask.min() == 0.0
    soft = (mask > 0) & (mask < 1)
    assert soft.any()  # the ramp between the 30 and 60 grey-level thresholds exists
    a = np.zeros((2, 2, 3), np.uint8)
    b = np.full((2, 2, 3), 45, np.uint8)
    b[0, 0] = 10
    b[1, 1] = 200
    m = glint_mask(b, a)
    assert m[0, 0] == 0 and m[1, 1] == 1 and m[0, 1] == pytest.approx(int(0.5 * 255) / 255)
    assert glint_mask(b, a, binary=True).tolist() == [[0, 0], [0, 1]]
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(gray(rgb), np.asarray(Image.fromarray(rgb).convert("L")))


def test_bad_files_raise(tmp_path):
    fx = write_sea_undistort_fixture(tmp_path / "d", num_scenes=4, size=16, blacklist=(), test_list=())
    (fx.root / "render_0001_no_waves.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (fx.root / "render_0002_no_sunglint.png").unlink()
    ds = SeaUndistortDataset(fx.root, "train", fractions=(1.0, 0.0, 0.0))
    ids = [r.scene_id for r in ds.samples]
    with pytest.raises(DataFormatError, match="render_0001_no_waves.png"):
        ds[ids.index("0001")]
    with pytest.raises(FileNotFoundError, match="render_0002_no_sunglint.png"):
        ds[ids.index("0002")]
    with pytest.raises(FileNotFoundError, match="blacklist-short.txt"):
        SeaUndistortDataset(fx.root, "train", blacklist="blacklist-short.txt")
    (fx.root / "test_list.txt").write_text("12a\n")
    with pytest.raises(DataFormatError, match="test_list.txt:1"):
        SeaUndistortDataset(fx.root, "train")
    (fx.root / "scene_settings.json").write_text("{oops")
    with pytest.raises(DataFormatError, match="scene_settings.json"):
        load_scene_settings(fx.root / "scene_settings.json")


def test_pair_transform_joint():
    torch.manual_seed(0)
    img = torch.rand(2, 3, 40, 40)
    t = PairTransform(16, "resizecrop", train=True, color_jitter="none")
    lq, gt, mask = t(img, img.clone(), img[:, :1].clone())
    assert lq.shape == (2, 3, 16, 16) and torch.equal(lq, gt) and torch.equal(lq[:, :1], mask)
    tj = PairTransform(16, "crop", train=True, color_jitter="strong", negative_values=True)
    lq, gt, mask = tj(img, img.clone(), torch.zeros(2, 1, 40, 40))
    assert torch.allclose(lq, gt) and lq.min() >= -1 and mask.unique().tolist() == [-1.0]
    ev = PairTransform(16, "resizecrop", train=False)
    lq, _, _ = ev(img, img, img[:, :1])
    assert torch.equal(lq, img[:, :, 12:28, 12:28])


def test_datamodule_batches_on_device(fixture):
    dm = SeaUndistortDataModule(fixture.root, size=32, batch_size=4, color_jitter="light")
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["lq"].dtype == torch.uint8
    out = dm.transform_batch(batch, train=True)
    assert out["lq"].shape == (4, 3, 32, 32) and out["mask"].shape == (4, 1, 32, 32)
    assert 0 <= float(out["lq"].min()) and float(out["lq"].max()) <= 1
    val = dm.transform_batch(next(iter(dm.val_dataloader())), train=False)
    assert val["gt"].shape[-1] == 32
