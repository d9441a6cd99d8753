from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from rsim.core.errors import DataFormatError
from rsim.core.weights import read_state_dict
from safetensors.torch import save_file


def _state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"enc.weight": torch.randn(3, 2, generator=g), "head.bias": torch.randn(3, generator=g)}


def test_formats_wrappers_and_key_filter(tmp_path: Path) -> None:
    state = _state()
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save({"epoch": 3, "state_dict": state}, tmp_path / "lightning.ckpt")
    torch.save({"params_ema": state}, tmp_path / "ema.pth")
    for name in ("w.safetensors", "lightning.ckpt"):
        got = read_state_dict(tmp_path / name)
        assert got.keys() == state.keys() and all(torch.equal(got[k], state[k]) for k in state)
    assert read_state_dict(tmp_path / "ema.pth", wrappers=("params_ema",)).keys() == state.keys()
    assert list(read_state_dict(tmp_path / "w.safetensors", keep=lambda k: k.startswith("enc."))) == ["enc.weight"]


def test_sharded_index_reads_only_the_wanted_shards(tmp_path: Path) -> None:
    state = _state()
    save_file({"enc.weight": state["enc.weight"]}, str(tmp_path / "a.safetensors"))
    index = {"weight_map": {"enc.weight": "a.safetensors", "head.bias": "b.safetensors"}}  # b is absent on disk
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    got = read_state_dict(tmp_path, keep=lambda k: k.startswith("enc."))
    assert torch.equal(got["enc.weight"], state["enc.weight"])
    with pytest.raises(FileNotFoundError, match="b.safetensors is missing"):
        read_state_dict(tmp_path)


def test_bad_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="weights file .*nope.pt is missing"):
        read_state_dict(tmp_path / "nope.pt")
    save_file(_state(), str(tmp_path / "w.safetensors"))
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="cut.safetensors: not a readable safetensors"):
        read_state_dict(tmp_path / "cut.safetensors")
    torch.save({"weight": torch.ones(1), "note": "text"}, tmp_path / "mixed.pt")
    with pytest.raises(DataFormatError, match=r"mixed.pt: expected tensors.*note"):
        read_state_dict(tmp_path / "mixed.pt")
    torch.save([torch.ones(1)], tmp_path / "list.pt")
    with pytest.raises(DataFormatError, match="list.pt: expected a state dict"):
        read_state_dict(tmp_path / "list.pt")


def test_grouped_checkpoints_only_when_asked(tmp_path: Path) -> None:
    state = _state()
    torch.save({"s1_encoder": {"w": state["enc.weight"]}, "head": {"b": state["head.bias"]}}, tmp_path / "g.pt")
    with pytest.raises(DataFormatError, match=r"g.pt: expected tensors.*s1_encoder"):
        read_state_dict(tmp_path / "g.pt")
    got = read_state_dict(tmp_path / "g.pt", nested=True)
    assert torch.equal(got["s1_encoder"]["w"], state["enc.weight"]) and list(got) == ["s1_encoder", "head"]
