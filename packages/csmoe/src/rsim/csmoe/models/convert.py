"""Converters from the published CSMAE checkpoint layouts to this package's models.

Accepted inputs (``torch.load`` result or safetensors dict):

* a Lightning training checkpoint ``{"state_dict": {"backbone.*", "decoder_s1_to_s2.*", ...}, ...}``;
* a bare backbone state dict (keys without the ``backbone.`` prefix, what the CSMAE README loader produces);
* this package's own ``CrossSensorMAE`` / ``CSMoEPretrainTask`` state dicts (prefix ``model.``).

The CSMAE key names are kept by :class:`~rsim.csmoe.models.backbone.CrossSensorViT`, so the conversion is a
prefix split plus validation. For a CSMoE target, the dense MLP of every Soft-MoE block initialises all its
experts ("sparse upcycling", an option of this package, not of the paper).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from rsim.csmoe.models.backbone import CrossSensorViT
from rsim.csmoe.models.soft_moe import SoftMoE
from torch import Tensor, nn

__all__ = [
    "check_against_manifest",
    "load_checkpoint_file",
    "load_csmae_weights",
    "split_csmae_checkpoint",
]

_DECODER_PREFIXES = ("decoder.", "decoder_s1_to_s2.", "decoder_s2_to_s1.")


def load_checkpoint_file(path: str | Path) -> dict[str, Tensor]:
    """Read a ``.ckpt``/``.pt``/``.pth`` (torch) or ``.safetensors`` file into a flat tensor dict.

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: If it is unreadable or holds no tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            raw: Any = load_file(str(path))
        else:
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt/truncated files raise many different types
        raise ValueError(f"checkpoint {path} could not be read ({type(err).__name__}: {err})") from err
    if isinstance(raw, Mapping) and "state_dict" in raw and isinstance(raw["state_dict"], Mapping):
        raw = raw["state_dict"]
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError(f"checkpoint {path} holds no state dict (expected a mapping of tensors)")
    tensors = {k: v for k, v in raw.items() if isinstance(v, Tensor)}
    if not tensors:
        raise ValueError(f"checkpoint {path} holds no tensors")
    return tensors


def split_csmae_checkpoint(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Split a checkpoint into (backbone keys, decoder keys) without prefixes of the wrapping module.

    Lightning checkpoints of the original store ``backbone.*`` next to ``decoder*.*``; this package's task
    stores ``model.backbone.*``. A bare backbone dict (no prefix) is returned as-is.
    """
    keys = list(state)
    for wrapper in ("model.", "module."):
        if keys and all(k.startswith(wrapper) for k in keys):
            state = {k[len(wrapper) :]: v for k, v in state.items()}
            break
    has_prefix = any(k.startswith("backbone.") for k in state)
    backbone: dict[str, Tensor] = {}
    decoders: dict[str, Tensor] = {}
    for k, v in state.items():
        if has_prefix and k.startswith("backbone."):
            backbone[k[len("backbone.") :]] = v
        elif k.startswith(_DECODER_PREFIXES):
            decoders[k] = v
        elif not has_prefix:
            backbone[k] = v
        # anything else (classifier heads, optimiser-free extras of training modules) is dropped
    return backbone, decoders


def _upcycle(model: CrossSensorViT, backbone: dict[str, Tensor]) -> dict[str, Tensor]:
    """Replace dense ``mlp.fc*`` tensors of Soft-MoE blocks by expert tensors."""
    out = dict(backbone)
    for name, moe in model.moe_modules().items():
        dense = [f"{name}.mlp.{p}" for p in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")]
        if not all(k in out for k in dense):
            continue
        fresh = SoftMoE(moe.dim, moe.num_experts, moe.slots_per_expert, moe.hidden_dim, moe.normalize)
        fresh.load_dense_mlp(*(out.pop(k) for k in dense))
        for k, v in fresh.state_dict().items():
            if k.startswith("fc"):  # routing parameters (phi, scale) keep the target's values
                out[f"{name}.mlp.{k}"] = v
    return out


def load_csmae_weights(
    module: nn.Module, state: Mapping[str, Tensor], *, upcycle: bool = True, strict: bool = True
) -> list[str]:
    """Load original CSMAE weights into a backbone or a ``CrossSensorMAE`` (backbone and decoders).

    Args:
        module: Target backbone or ``CrossSensorMAE``.
        state: Checkpoint tensors (any layout accepted by :func:`split_csmae_checkpoint`).
        upcycle: Initialise Soft-MoE experts from the dense MLP weights of the same block.
        strict: Raise if a target key is missing or a shape differs.

    Returns:
        Target keys left at their initial values (e.g. Soft-MoE routing parameters, or decoders absent from a
        backbone-only file).

    Raises:
        KeyError: With ``strict``, if backbone keys are missing or unexpected (names listed).
        ValueError: If a shape differs (key and both shapes named).
    """
    backbone_sd, decoder_sd = split_csmae_checkpoint(state)
    target_backbone = module if isinstance(module, CrossSensorViT) else module.get_submodule("backbone")
    assert isinstance(target_backbone, CrossSensorViT)
    if upcycle:
        backbone_sd = _upcycle(target_backbone, backbone_sd)
    else:  # dense MLP tensors of Soft-MoE blocks have no target: drop them
        moe_mlp = tuple(f"{n}.mlp.fc" for n in target_backbone.moe_layer_names)
        backbone_sd = {k: v for k, v in backbone_sd.items() if not (moe_mlp and k.startswith(moe_mlp))}
    new = {f"backbone.{k}" if target_backbone is not module else k: v for k, v in backbone_sd.items()}
    if target_backbone is not module:
        new.update(decoder_sd)
    own = module.state_dict()
    unexpected = sorted(set(new) - set(own))
    if unexpected:
        raise KeyError(f"checkpoint keys not in the target model: {unexpected[:10]} ({len(unexpected)} in all)")
    for k, v in new.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(
                f"checkpoint tensor {k!r} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}"
            )
    missing = sorted(set(own) - set(new))
    moe_keys = {k for k in missing if ".mlp." in k and any(k.startswith(p) for p in _moe_prefixes(module))}
    hard_missing = [k for k in missing if k not in moe_keys and not k.startswith(_DECODER_PREFIXES)]
    if strict and hard_missing:
        raise KeyError(f"checkpoint lacks model keys: {hard_missing[:10]} ({len(hard_missing)} in all)")
    module.load_state_dict(new, strict=False)
    return missing


def _moe_prefixes(module: nn.Module) -> list[str]:
    bb = module if isinstance(module, CrossSensorViT) else module.get_submodule("backbone")
    assert isinstance(bb, CrossSensorViT)
    pre = "" if bb is module else "backbone."
    return [f"{pre}{n}." for n in bb.moe_layer_names]


def check_against_manifest(module: nn.Module, manifest: str | Path) -> None:
    """Compare a module's state dict (keys in order, shapes) with a reference manifest JSON.

    Raises:
        ValueError: Naming the first differing key/shape or the count mismatch.
    """
    data = json.loads(Path(manifest).read_text())
    ref = [(t["key"], tuple(t["shape"])) for t in data["tensors"]]
    own = [(k, tuple(v.shape)) for k, v in module.state_dict().items()]
    if sorted(ref) != sorted(own):
        missing = sorted(set(ref) - set(own))[:5]
        extra = sorted(set(own) - set(ref))[:5]
        raise ValueError(f"state dict differs from manifest {manifest}: missing {missing}, unexpected {extra}")
    n = sum(int(torch.Size(s).numel()) for _, s in own)
    if n != data["num_parameters"]:
        raise ValueError(f"parameter count {n} differs from manifest {manifest} ({data['num_parameters']})")
