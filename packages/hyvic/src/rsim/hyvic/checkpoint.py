"""Build, save and load entropy-coding models (HyVIC and the adapted CompressAI baselines) for the codec."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from compressai.models import CompressionModel
from rsim.core.errors import DataFormatError
from rsim.core.io import atomic_path
from rsim.hyvic.models.baselines import BASELINES, build_baseline
from rsim.hyvic.models.hyvic import HyVIC, HyVICConfig

ARCHITECTURES = ("hyvic", *BASELINES)


def build_model(architecture: str, config: dict[str, Any]) -> CompressionModel:
    """Build an untrained entropy-coding model.

    Args:
        architecture: ``hyvic``, ``mbt2018-mean`` or ``bmshj2018-hyperprior``.
        config: For ``hyvic`` the :class:`HyVICConfig` fields; baselines: ``in_channels``, ``N``, ``M``.
    """
    if architecture == "hyvic":
        return HyVIC(HyVICConfig(**config))
    if architecture in BASELINES:
        return build_baseline(architecture, int(config["in_channels"]), int(config["N"]), int(config["M"]))
    raise ValueError(f"unknown architecture {architecture!r}; choose from {ARCHITECTURES}")


def model_config(model: CompressionModel) -> dict[str, Any]:
    """The config dict that :func:`build_model` turns back into ``model``."""
    if isinstance(model, HyVIC):
        return model.config.to_dict()
    return dict(model.hparams)


def model_architecture(model: CompressionModel) -> str:
    """Architecture name of a model built by :func:`build_model`."""
    if isinstance(model, HyVIC):
        return "hyvic"
    for name, cls in BASELINES.items():
        if type(model) is cls:
            return name
    raise ValueError(f"unsupported model type {type(model).__name__}")


def model_channels(model: CompressionModel) -> int:
    """Number of spectral bands the model codes."""
    return int(model.config.in_channels if isinstance(model, HyVIC) else model.in_channels)


def model_divisor(model: CompressionModel) -> int:
    """Tile H and W must be multiples of this."""
    return int(model.config.divisor if isinstance(model, HyVIC) else model.divisor)


def model_id(model: CompressionModel) -> str:
    """16-hex-digit fingerprint of architecture, config and every parameter/buffer (after ``update``)."""
    h = hashlib.sha256()
    h.update(model_architecture(model).encode())
    h.update(repr(sorted(model_config(model).items())).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def save_model(path: str | Path, model: CompressionModel) -> None:
    """Save ``{"architecture", "config", "state_dict"}`` atomically (after ``update``)."""
    model.update(force=True)
    payload = {
        "architecture": model_architecture(model),
        "config": model_config(model),
        "state_dict": model.state_dict(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_model(path: str | Path) -> CompressionModel:
    """Load a codec model from a :func:`save_model` file or a ``HyVICTask`` Lightning checkpoint.

    The model is returned on CPU, in eval mode, with its CDF tables built (``update(force=True)``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise DataFormatError(f"{path}: not a readable model checkpoint ({err})") from err
    if not isinstance(ckpt, dict):
        raise DataFormatError(f"{path}: expected a dict checkpoint, got {type(ckpt).__name__}")
    if "hyper_parameters" in ckpt:  # Lightning checkpoint of HyVICTask
        hp = ckpt["hyper_parameters"]
        for key in ("architecture", "model_config"):
            if key not in hp:
                raise DataFormatError(f"{path}: hyper_parameters lack {key!r}; not a HyVICTask checkpoint")
        arch, cfg = hp["architecture"], dict(hp["model_config"])
        state = {k[len("model.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    else:
        for key in ("architecture", "config", "state_dict"):
            if key not in ckpt:
                raise DataFormatError(f"{path}: key {key!r} absent; expected a hyvic model file")
        arch, cfg, state = ckpt["architecture"], dict(ckpt["config"]), ckpt["state_dict"]
    model = build_model(arch, cfg)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise DataFormatError(f"{path}: state dict does not match {arch} {cfg}: {err}") from err
    model.eval()
    model.update(force=True)
    return model


__all__ = [
    "ARCHITECTURES",
    "build_model",
    "load_model",
    "model_architecture",
    "model_channels",
    "model_config",
    "model_divisor",
    "model_id",
    "save_model",
]
