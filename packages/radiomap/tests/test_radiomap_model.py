import json
from pathlib import Path

import pytest
import torch
from rsim.radiomap.cli import main
from rsim.radiomap.models import (
    UNUSED_KEYS,
    RadioNet256to32,
    convert_checkpoint,
    convert_state_dict,
    load_weights,
    radionet_any_size,
)

REF = Path(__file__).resolve().parents[3] / ".." / "shared" / "reference" / "radionet256to32"
needs_ref = pytest.mark.skipif(not REF.is_dir(), reason="reference fixtures absent")


def _manifest(name: str) -> list[dict]:
    return json.loads((REF / name).read_text())["tensors"]


def _random_state(manifest: list[dict]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = {}
    for t in manifest:
        shape = t["shape"]
        out[t["key"]] = (
            torch.empty(shape) if len(shape) == 4 and shape[0] * shape[1] > 4096 else torch.randn(shape, generator=g)
        )
    return out


@needs_ref
def test_state_dict_keys_and_shapes_match_manifest():
    with torch.device("meta"):
        model = RadioNet256to32(inputs=32)
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    ref = [
        (t["key"], t["shape"]) for t in _manifest("manifest_radionet256to32_in32.json") if t["key"] not in UNUSED_KEYS
    ]
    assert ours == ref  # same keys, shapes and order
    n_unused = sum(
        torch.Size(t["shape"]).numel()
        for t in _manifest("manifest_radionet256to32_in32.json")
        if t["key"] in UNUSED_KEYS
    )
    assert sum(v.numel() for v in model.state_dict().values()) + n_unused == 36_474_571


@needs_ref
@pytest.mark.parametrize("name", ["manifest_radionet256to32_in32.json", "manifest_radionetanysize_in32_ds8.json"])
def test_load_manifest_shaped_state_dict(name):
    state = _random_state(_manifest(name))
    converted = convert_state_dict(state)
    assert not any(k.startswith("model.") or k in UNUSED_KEYS for k in converted)
    with torch.device("meta"):
        model = RadioNet256to32(inputs=32)
    model.load_state_dict(converted, assign=True)
    key = "output.weight"
    src = state.get(key, state.get("model." + key))
    assert torch.equal(model.output.weight, src)


def test_converter_rejects_wrong_keys_and_shapes():
    with torch.device("meta"):
        state = RadioNet256to32(inputs=8).state_dict()
    bad = dict(state)
    bad.pop("output.bias")
    with pytest.raises(ValueError, match="missing"):
        convert_state_dict(bad, source="ckpt.pth")
    bad = dict(state)
    bad["output.weight"] = torch.empty(2, 256, 1, 1, device="meta")
    with pytest.raises(ValueError, match=r"ckpt.pth: output.weight has shape"):
        convert_state_dict(bad, source="ckpt.pth")
    with pytest.raises(ValueError, match="encode1_conv"):
        convert_state_dict({"foo": torch.zeros(1)}, source="ckpt.pth")


@pytest.mark.parametrize(("size", "out"), [(128, 16), (192, 24), (256, 32)])
def test_output_shapes_small_width(size, out):
    torch.manual_seed(0)
    model = RadioNet256to32(inputs=5, width_mult=0.125).eval()
    x = torch.rand(1, 5, size, size)
    with torch.no_grad():
        y = model(x)
        assert y.shape == (1, 1, out, out)
        assert torch.equal(model(x, torch.ones(1)), y)  # z is ignored


def test_kaiming_init_keeps_the_input_signal():
    """PyTorch's default init lets the input signal vanish through the deep ReLU U-Net (the output is ~constant)."""
    x = torch.rand(2, 5, 64, 64)
    spread = {}
    for init in ("torch", "kaiming"):
        torch.manual_seed(0)
        model = RadioNet256to32(inputs=5, width_mult=0.125, init=init).eval()
        with torch.no_grad():
            y = model(x)
        spread[init] = (y[0] - y[1]).abs().mean().item()
    assert spread["torch"] < 1e-3 < 1e-2 < spread["kaiming"]
    assert torch.equal(RadioNet256to32(inputs=5, width_mult=0.125).output.bias, torch.zeros(1))
    with pytest.raises(ValueError, match="init must be one of"):
        RadioNet256to32(inputs=5, width_mult=0.125, init="xavier")


def test_invalid_inputs_and_factory():
    model = RadioNet256to32(inputs=5, width_mult=0.125)
    with pytest.raises(ValueError, match="multiples of 64"):
        model(torch.rand(1, 5, 250, 250))
    with pytest.raises(ValueError, match=r"\[B, 5, H, W\]"):
        model(torch.rand(1, 4, 256, 256))
    with pytest.raises(ValueError, match="initial_downsampling=1"):
        radionet_any_size(5, 1)
    assert isinstance(radionet_any_size(5, 8, width_mult=0.125), RadioNet256to32)
    small = sum(p.numel() for p in model.parameters())
    assert small < 1_000_000


def test_import_weights_roundtrip(tmp_path, capsys):
    torch.manual_seed(0)
    with torch.device("meta"):
        ref = RadioNet256to32(inputs=3)
    state = {"model." + k: torch.randn(v.shape) * 0.01 for k, v in ref.state_dict().items()}
    state.update({"model.delta_1": torch.tensor(1.0), "model.material_weights": torch.ones(7)})
    src = tmp_path / "ckpt.pt"
    torch.save(state, src)
    dst = tmp_path / "w.safetensors"
    assert main(["import-weights", str(src), str(dst)]) == 0
    assert "inputs=3" in capsys.readouterr().out
    model = load_weights(dst)
    assert torch.equal(model.decode3_sdu.conv5.weight, state["model.decode3_sdu.conv5.weight"])
    assert convert_checkpoint(src, tmp_path / "again.safetensors") == {"inputs": 3}
    assert main(["import-weights", str(tmp_path / "missing.pt"), str(dst)]) == 1
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert main(["import-weights", str(tmp_path / "bad.pt"), str(dst)]) == 1
    assert "bad.pt" in capsys.readouterr().err
