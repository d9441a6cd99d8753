import importlib
import inspect
from pathlib import Path

import pytest
import yaml
from rsim.sea_undistort.cli import main

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def _cls(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_configs_name_real_arguments(config):
    cfg = yaml.safe_load(config.read_text())
    for section in ("model", "data"):
        cls = _cls(cfg[section]["class_path"])
        params = inspect.signature(cls.__init__).parameters
        unknown = set(cfg[section]["init_args"]) - set(params)
        assert not unknown, f"{config.name}: {section} has unknown arguments {unknown}"
    for cb in cfg["trainer"].get("callbacks", []):
        _cls(cb["class_path"])


def test_cli_verbs_and_errors(tmp_path, capsys):
    assert main(["make-fixture", str(tmp_path / "fx"), "--num-scenes", "4", "--size", "16"]) == 0
    assert "wrote 4 scenes" in capsys.readouterr().out
    assert main(["restore", "in.tif", "out.tif", "--ckpt", str(tmp_path / "none.ckpt")]) == 1
    assert "none.ckpt" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nowhere")]) == 1
    assert "nowhere" in capsys.readouterr().err
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "render" in out and "restore" in out and "evaluate" in out
