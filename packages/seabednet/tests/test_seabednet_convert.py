"""Converter for the original checkpoints: containers, prefixes, validation, round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from rsim.core.errors import DataFormatError
from rsim.seabednet.models.convert import convert_checkpoint, infer_config, load_converted
from safetensors.torch import load_file

REF = Path(__file__).resolve().parents[3] / ".." / "shared" / "reference" / "seabednet" / "fixture_a"
pytestmark = pytest.mark.skipif(not REF.is_dir(), reason="reference folder absent")


@pytest.fixture(scope="module")
def base_sd() -> dict[str, torch.Tensor]:
    return load_file(str(REF / "state_dict.safetensors"))


@pytest.mark.parametrize("container", ["plain", "checkpoint", "dataparallel"])
def test_convert_round_trip(tmp_path: Path, base_sd, container: str) -> None:
    torch.set_num_threads(1)
    if container == "plain":
        obj: object = base_sd
    elif container == "checkpoint":
        obj = {"epoch": 9, "state_dict": base_sd, "optimizer": {"lr": 1e-4}}
    else:
        obj = {"model_state_dict": {f"module.{k}": v for k, v in base_sd.items()}}
    src = tmp_path / "original.pth"
    torch.save(obj, src)
    out = tmp_path / "out.safetensors"
    config = convert_checkpoint(src, out)
    assert config == {
        "in_channels": 3,
        "features": 8,
        "bathymetry_out_channels": 1,
        "segmentation_out_channels": 5,
    }
    model = load_converted(out)
    assert model.reference_compatible
    x = torch.from_numpy(np.load(REF / "input.npy"))[:1]
    with torch.no_grad():
        bathy, seg = model(x)
    torch.testing.assert_close(bathy, torch.from_numpy(np.load(REF / "output_bathy.npy"))[:1], atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(seg, torch.from_numpy(np.load(REF / "output_seg.npy"))[:1], atol=1e-5, rtol=1e-4)


def test_constructed_layout_pos_embed_1024(tmp_path: Path, base_sd) -> None:
    """A checkpoint saved before any forward holds (1, 1024, C) pos_embeds; it converts and loads too."""
    sd = dict(base_sd)
    for i, c in enumerate((8, 16, 32, 64), start=1):
        sd[f"fusion{i}.vit.pos_embed"] = torch.zeros(1, 1024, c)
    src = tmp_path / "fresh.pth"
    torch.save(sd, src)
    convert_checkpoint(src, tmp_path / "fresh.safetensors")
    model = load_converted(tmp_path / "fresh.safetensors")
    assert model.fusion1.vit.pos_embed.shape == (1, 1024, 8)
    with pytest.warns(UserWarning, match="zeros are loaded"):
        default = load_converted(tmp_path / "fresh.safetensors", reference_compatible=False)
    assert default.fusion1.vit.pos_embed.shape == (1, 64, 8)
    assert torch.count_nonzero(default.fusion1.vit.pos_embed) == 0


def test_convert_errors(tmp_path: Path, base_sd) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.pth"):
        convert_checkpoint(tmp_path / "missing.pth", tmp_path / "o.safetensors")
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DataFormatError, match=r"corrupt\.pth"):
        convert_checkpoint(bad, tmp_path / "o.safetensors")
    sd = {k: v for k, v in base_sd.items() if not k.startswith("fusion3b.")}
    torch.save(sd, tmp_path / "partial.pth")
    with pytest.raises(DataFormatError, match=r"missing keys.*fusion3b"):
        convert_checkpoint(tmp_path / "partial.pth", tmp_path / "o.safetensors")
    sd = dict(base_sd)
    sd["fusion2.conv.weight"] = torch.zeros(16, 30, 1, 1)
    torch.save({"state_dict": sd}, tmp_path / "shape.pth")
    with pytest.raises(DataFormatError, match=r"fusion2\.conv\.weight"):
        convert_checkpoint(tmp_path / "shape.pth", tmp_path / "o.safetensors")
    torch.save({"epoch": 1}, tmp_path / "nosd.pth")
    with pytest.raises(DataFormatError, match="no tensor state dict"):
        convert_checkpoint(tmp_path / "nosd.pth", tmp_path / "o.safetensors")
    assert not (tmp_path / "o.safetensors").exists()
    with pytest.raises(DataFormatError, match="head"):
        infer_config({"bathy_encoder.enc1.double_conv.0.weight": torch.zeros(8, 3, 3, 3)})


def test_convert_from_safetensors_and_raw_load(tmp_path: Path) -> None:
    """A raw state-dict .safetensors (no metadata) converts, and also loads directly (config inferred)."""
    out = tmp_path / "c.safetensors"
    config = convert_checkpoint(REF / "state_dict.safetensors", out)
    assert config["features"] == 8
    direct = load_converted(REF / "state_dict.safetensors")
    converted = load_converted(out)
    for (k1, v1), (k2, v2) in zip(direct.state_dict().items(), converted.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2)
