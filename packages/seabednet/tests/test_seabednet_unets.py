"""Single-task baselines: UNet-Bathy and one-branch U-Nets, their training through SeabedNetTask and the table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from rsim.seabednet.baselines import evaluate_network, format_table
from rsim.seabednet.cli import main
from rsim.seabednet.data.magicbathynet import MagicBathyNetReader
from rsim.seabednet.data.testing import write_magicbathynet
from rsim.seabednet.losses import masked_ce, masked_rmse
from rsim.seabednet.models.seabednet import SeabedNet
from rsim.seabednet.models.unet import SingleTaskUNet, UNetBathy, head_channels, network_heads
from rsim.seabednet.predict import MapPredictor
from rsim.seabednet.tasks import SeabedNetTask
from torch import nn

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


def test_unet_bathy_structure() -> None:
    torch.manual_seed(0)
    net = UNetBathy(3, 1)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    convs = [m for m in net.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs[::2]] == [(3, 32), (32, 64), (64, 128), (128, 256)]
    ups = [m for m in net.decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(u.in_channels, u.out_channels, u.stride) for u in ups] == [
        (256, 128, (2, 2)),
        (128, 64, (2, 2)),
        (64, 32, (2, 2)),
    ]
    keys = list(net.state_dict())
    assert keys[0] == "encoder.0.double_conv.0.weight" and "encoder.3.maxpool_conv.1.double_conv.2.bias" in keys
    assert "decoder.0.up.weight" in keys and keys[-1] == "decoder.3.bias"
    assert head_channels(net) == (1, 0)
    for side in (30, 32):  # SPOT-6 native side (not divisible by 8) and a regular one
        out = net(torch.rand(2, 3, side, side))
        assert out.shape == (2, 1, side, side)
    with pytest.raises(ValueError, match=r"expected input \[B, 3"):
        net(torch.rand(1, 4, 32, 32))


def test_unet_bathy_is_the_bathymetry_branch_at_width_32() -> None:
    """UNet-Bathy and Seabed-Net's bathymetry branch (f=32, no fusion) compute the same function."""
    torch.manual_seed(0)
    ub = UNetBathy(3, 1).eval()
    st = SingleTaskUNet(3, 32, "bathymetry").eval()
    src = ub.state_dict()
    names = {"encoder.0.": "encoder.enc1.", "decoder.3.": "decoder.out_conv."}
    names.update({f"encoder.{i}.maxpool_conv.1.": f"encoder.enc{i + 1}." for i in (1, 2, 3)})
    names.update({f"decoder.{i}.": f"decoder.decoder.{i}." for i in (0, 1, 2)})
    mapped = {}
    for k, v in src.items():
        prefix = next(p for p in names if k.startswith(p))
        mapped[names[prefix] + k[len(prefix) :]] = v
    st.load_state_dict(mapped)  # strict: same tensors, same shapes
    x = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(st(x), ub(x))


def test_single_task_unets_match_seabednet_branches() -> None:
    torch.manual_seed(0)
    joint = SeabedNet(3, 8, 1, 5)
    bathy = SingleTaskUNet(3, 8, "bathymetry")
    seg = SingleTaskUNet(3, 8, "segmentation", num_classes=5)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in bathy.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in seg.modules())
    assert head_channels(bathy) == (1, 0) and head_channels(seg) == (0, 5) and head_channels(joint) == (1, 5)
    jsd = joint.state_dict()
    for net, branch in ((bathy, "bathy"), (seg, "seg")):
        sd = {k: jsd[f"{branch}_{k}"] for k in net.state_dict()}  # the keys of one Seabed-Net branch
        net.load_state_dict(sd)
    x = torch.rand(2, 3, 32, 32)
    depth, logits = network_heads(seg.eval(), x)
    assert depth is None and logits is not None and logits.shape == (2, 5, 32, 32)
    depth, logits = network_heads(bathy.eval(), x)
    assert logits is None and depth is not None and depth.shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match="task must be"):
        SingleTaskUNet(3, 8, "depth")


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(2, 1, 32, 32, generator=g) > 0.3
    return {
        "image": torch.rand(2, 3, 32, 32, generator=g),
        "depth": torch.rand(2, 1, 32, 32, generator=g) * mask,
        "label": torch.randint(0, 5, (2, 32, 32), generator=g),
        "mask": mask,
    }


@pytest.mark.parametrize("architecture", ["unet_bathy", "unet_bathymetry", "unet_segmentation"])
def test_task_single_task_losses(architecture: str) -> None:
    torch.manual_seed(0)
    task = SeabedNetTask(features=8, architecture=architecture)
    assert task.weighting is None and not any(k.startswith("weighting") for k in task.state_dict())
    batch = _batch()
    loss_b, loss_s, bathy, logits = task._losses(batch)
    out = task.net(batch["image"])
    if architecture == "unet_segmentation":
        assert loss_b is None and bathy is None and logits is not None and loss_s is not None
        torch.testing.assert_close(loss_s, masked_ce(out, batch["label"], 4))
    else:
        assert loss_s is None and logits is None and bathy is not None and loss_b is not None
        torch.testing.assert_close(loss_b, masked_rmse(out, batch["depth"], batch["mask"]))
        loss_b.backward()
        assert all(p.grad is not None for p in task.net.parameters())
    with pytest.raises(ValueError, match="unknown architecture"):
        SeabedNetTask(architecture="segformer")  # type: ignore[arg-type]


def test_format_table_mixes_depth_and_segmentation_rows() -> None:
    rows: list[dict[str, float | str]] = [
        {"method": "Lyzenga linear", "rmse": 2.0, "mae": 1.5, "error_std": 1.9, "n_test": 100.0},
        {
            "method": "U-Net (segmentation only)",
            "oa": 0.5,
            "f1_macro": 0.4,
            "kappa": 0.2,
            "miou": 0.3,
            "n_test_seg": 90.0,
        },
    ]
    rows[1]["n_test_seg"] = 90.0
    lines = format_table(rows).splitlines()
    assert lines[0].endswith("| OA | F1 macro | kappa | mIoU | seg test pixels |")
    assert lines[2] == "| Lyzenga linear | 2.000 | 1.500 | 1.900 | 100 | – | – | – | – | – |"
    assert lines[3] == "| U-Net (segmentation only) | – | – | – | – | 0.500 | 0.400 | 0.200 | 0.300 | 90 |"


def test_evaluate_network_at_native_resolution(tmp_path: Path) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    root = write_magicbathynet(tmp_path, num_patches=5, seed=2)
    reader = MagicBathyNetReader(root, "agia_napa", "spot6")
    _, test = reader.split("pixel_class")
    norm = torch.from_numpy(reader.norm_param())
    seg = SingleTaskUNet(3, 8, "segmentation", 5).eval()
    pred = MapPredictor(seg, norm, 30.443, tile=30, overlap=0, input_size=32, undefined_index=4, name="seg")
    row = evaluate_network(pred, reader, test, undefined_index=4)
    assert "rmse" not in row and 0.0 <= float(row["oa"]) <= 1.0
    labels = np.concatenate([reader.read_labels(p).ravel() for p in test])
    valid = np.concatenate([((reader.read_image(p)[0] != 0).mean(0) >= 0.5).ravel() for p in test])
    assert int(float(row["n_test_seg"])) == int((valid & (labels != 4)).sum())
    # a constant prediction of class c: OA equals the share of c among the scored pixels
    with torch.no_grad():
        seg.decoder.out_conv.weight.zero_()
        seg.decoder.out_conv.bias.copy_(torch.tensor([0.0, 0.0, 5.0, 0.0, 0.0]))
    row = evaluate_network(pred, reader, test, undefined_index=4)
    scored = labels[valid & (labels != 4)]
    assert float(row["oa"]) == pytest.approx(float((scored == 2).mean()), abs=1e-6)
    depth_net = UNetBathy(3, 1).eval()
    with torch.no_grad():
        depth_net.decoder[3].weight.zero_()
        depth_net.decoder[3].bias.fill_(0.25)  # 0.25 * 30.443 m everywhere
    pred = MapPredictor(depth_net, norm, 30.443, tile=30, overlap=0, input_size=32, name="bathy")
    row = evaluate_network(pred, reader, test)
    gts = np.concatenate(
        [
            -reader.read_depth(p)[(reader.read_depth(p) != 0) & ((reader.read_image(p)[0] != 0).mean(0) >= 0.5)]
            for p in test
        ]
    )
    assert "oa" not in row and int(float(row["n_test"])) == gts.size
    assert float(row["rmse"]) == pytest.approx(float(np.sqrt(np.mean((0.25 * 30.443 - gts) ** 2))), rel=1e-4)


@pytest.fixture(scope="module")
def trained_baselines(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("unets")
    data = write_magicbathynet(tmp / "data", num_patches=5, seed=0)
    ckpts = {}
    for arch in ("unet_bathy", "unet_bathymetry", "unet_segmentation"):
        code = main(
            [
                "fit",
                "--config",
                str(DEMO),
                f"--model.init_args.architecture={arch}",
                f"--data.root={data}",
                "--data.batch_size=1",
                "--data.input_size=64",  # the U-Nets take any size; 64 keeps the CPU step short
                "--model.init_args.input_size=64",
                f"--trainer.default_root_dir={tmp / arch}",
                "--trainer.max_steps=1",
                "--trainer.limit_val_batches=1",
                "--trainer.num_sanity_val_steps=0",
                "--trainer.logger=false",
            ]
        )
        assert code == 0
        found = sorted((tmp / arch).rglob("*.ckpt"))
        assert found, f"fit of {arch} wrote no checkpoint"
        ckpts[arch] = found[-1]
    return data, ckpts


def test_baselines_verb_with_trained_unets(
    trained_baselines: tuple[Path, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, ckpts = trained_baselines
    ck = torch.load(ckpts["unet_bathy"], map_location="cpu", weights_only=False)
    assert ck["hyper_parameters"]["architecture"] == "unet_bathy" and ck["seabednet"]["native_tile"] == 30
    out = tmp_path / "table.md"
    args = ["baselines", "--root", str(data), "--site", "agia_napa", "--modality", "spot6", "--out", str(out)]
    assert main([*args, "--ckpt", *[str(p) for p in ckpts.values()]]) == 0
    lines = out.read_text().splitlines()
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in lines[2:]}
    assert len(rows) == 6  # 3 pixel baselines + 3 trained networks
    by = {
        name: next(v for k, v in rows.items() if k.startswith(name))
        for name in (
            "MagicBathyNet UNet-Bathy",
            "U-Net (bathymetry only)",
            "U-Net (segmentation only)",
            "Lyzenga linear",
        )
    }
    n_depth = by["Lyzenga linear"][4]
    for name in ("MagicBathyNet UNet-Bathy", "U-Net (bathymetry only)"):
        assert by[name][4] == n_depth and float(by[name][1]) > 0  # same test pixels as the pixel baselines
        assert by[name][5:] == ["–"] * 4 + ["– |"]
    seg = by["U-Net (segmentation only)"]
    assert seg[1:5] == ["–"] * 4 and 0.0 <= float(seg[5]) <= 1.0 and int(seg[9].rstrip(" |")) > 0
    reader = MagicBathyNetReader(data, "agia_napa", "spot6")
    _, test = reader.split("pixel_class")
    assert f"{len(test)} test patches" in capsys.readouterr().out
    # map prediction with a segmentation-only checkpoint writes the class map and the preview only
    image = reader.path("img", test[0])
    maps = tmp_path / "maps"
    assert main(["predict", str(image), "--ckpt", str(ckpts["unet_segmentation"]), "--out-dir", str(maps)]) == 0
    assert "classes only" in capsys.readouterr().out
    assert sorted(p.name for p in maps.iterdir()) == [f"{image.stem}_classes.tif", f"{image.stem}_preview.png"]
