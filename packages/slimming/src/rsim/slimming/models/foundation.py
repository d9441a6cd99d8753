"""Remote-sensing foundation-model encoders built from timm blocks, loaded from local checkpoint files.

Every encoder here is made of timm ``Attention``/``Mlp`` modules so :func:`rsim.slimming.slim.slim` applies.
Key layouts (written from the published model code's structure; nothing is downloaded):

- ``ssl4eo``: torchgeo's SSL4EO-S12 ViT-S/16 weights (MoCo, DINO, MAE; 13-band L1C) = timm
  ``vit_small_patch16_224`` keys (``cls_token``, ``pos_embed``, ``patch_embed.proj.*``, ``blocks.N.*``, ``norm.*``)
  without a classifier [code: torchgeo].
- ``scalemae``: torchgeo's Scale-MAE ViT-L/16 (RGB) = timm ``vit_large_patch16_224`` keys; the position embedding
  is the 2-D sin-cos table whose grid coordinates are multiplied by the ground-sample-distance ratio ``res``
  [code: Scale-MAE / torchgeo]; a stored ``pos_embed`` is ignored in favour of the GSD-aware one.
- ``prithvi``: Prithvi-100M MAE checkpoint (HLS, 6 bands, 3 frames) = ``patch_embed.proj`` a ``Conv3d`` with
  tubelet 1, ``cls_token``, ``pos_embed`` ``[1, 1 + T·L, D]``, ``blocks.N.*`` (timm Block), ``norm.*``; the MAE
  decoder keys (``decoder_*``, ``mask_token``) are dropped; an ``encoder.`` prefix (Prithvi-EO-2.0) is stripped
  [code: Prithvi model card].
- ``dofa``: DOFA ViT (wavelength-conditioned dynamic patch embedding), :mod:`rsim.slimming.models.dofa`, through
  :func:`~rsim.slimming.models.dofa.convert_dofa_checkpoint` [code: zhu-xlab/DOFA, torchgeo].
- ``croma``: CROMA radar/optical/joint ViTs with 2-D ALiBi, :mod:`rsim.slimming.models.croma`, through
  :func:`~rsim.slimming.models.croma.convert_croma_checkpoint` [code: antofuller/CROMA].
- ``ssl4eo_resnet50``: torchgeo's SSL4EO-S12 ResNet-50 (MoCo/DINO, 13 bands) = timm ``resnet50`` keys
  (``conv1``, ``bn1``, ``layerN.M.*``), ``fc.*`` ignored [code: torchgeo]; slimmed by :mod:`rsim.slimming.cnn`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import timm
import torch
from rsim.core.tasks.classification import load_state_dict_file
from timm.models.vision_transformer import Block, VisionTransformer
from torch import Tensor, nn

__all__ = [
    "CONVERTERS",
    "ENCODERS",
    "PrithviEncoder",
    "build_prithvi",
    "build_scalemae",
    "build_ssl4eo_resnet50",
    "build_ssl4eo_vit_s16",
    "encode",
    "input_channels",
    "load_encoder",
    "load_weights",
    "sincos_pos_embed",
]


def sincos_pos_embed(dim: int, grid: int, res: float = 1.0, cls_token: bool = True) -> Tensor:
    """2-D sin-cos position embedding ``[1 (+1), grid², dim]``; coordinates scaled by ``res`` (Scale-MAE)."""
    if dim % 4:
        raise ValueError(f"sin-cos position embedding needs dim divisible by 4, got {dim}")
    coords = np.arange(grid, dtype=np.float64) * res
    gw, gh = np.meshgrid(coords, coords)  # w first, as in the MAE reference tables

    def one(pos: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4.0))
        out = pos.reshape(-1)[:, None] * omega[None, :]
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    table = np.concatenate([one(gw), one(gh)], axis=1)
    if cls_token:
        table = np.concatenate([np.zeros((1, dim)), table], axis=0)
    return torch.from_numpy(table).float().unsqueeze(0)


def _strip(state: Mapping[str, Tensor], prefixes: tuple[str, ...]) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        for p in prefixes:
            if key.startswith(p):
                key = key[len(p) :]
                break
        out[key] = value
    return out


def load_weights(model: nn.Module, state: Mapping[str, Tensor], source: str, ignore: tuple[str, ...] = ()) -> nn.Module:
    """Load ``state`` strictly, except keys starting with ``ignore`` (the model's own values are kept for those).

    Raises:
        KeyError: Naming ``source`` and the missing, unexpected or wrongly shaped keys.
    """
    own = model.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(ignore)}
    state.update({k: v for k, v in own.items() if k.startswith(ignore)})  # ignored keys keep the model's values
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        raise KeyError(
            f"{source}: state dict does not match {type(model).__name__} "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {wrong[:3]})"
        )
    model.load_state_dict(state)
    return model


def build_ssl4eo_vit_s16(in_chans: int = 13, img_size: int = 224, **kwargs: Any) -> VisionTransformer:
    """SSL4EO-S12 ViT-S/16 (13-band L1C divided by 10000, 224 px) [code: torchgeo]; no classifier."""
    model: VisionTransformer = timm.create_model(  # type: ignore[assignment]
        "vit_small_patch16_224", pretrained=False, in_chans=in_chans, img_size=img_size, num_classes=0, **kwargs
    )
    return model


def build_ssl4eo_resnet50(in_chans: int = 13, model_name: str = "resnet50", **kwargs: Any) -> nn.Module:
    """SSL4EO-S12 ResNet-50 (13-band L1C / 10000) [code: torchgeo]; pooled features, no classifier."""
    return timm.create_model(model_name, pretrained=False, in_chans=in_chans, num_classes=0, **kwargs)


def _build_dofa(**kwargs: Any) -> nn.Module:
    from rsim.slimming.models.dofa import build_dofa

    return build_dofa(**kwargs)


def _build_croma(**kwargs: Any) -> nn.Module:
    from rsim.slimming.models.croma import build_croma

    return build_croma(**kwargs)


def _convert_dofa(state: Mapping[str, Any], model: nn.Module, source: str) -> dict[str, Tensor]:
    from rsim.slimming.models.dofa import DOFAEncoder, convert_dofa_checkpoint

    assert isinstance(model, DOFAEncoder)
    return convert_dofa_checkpoint(state, model, source)


def _convert_croma(state: Mapping[str, Any], model: nn.Module, source: str) -> dict[str, Tensor]:
    from rsim.slimming.models.croma import CROMA, convert_croma_checkpoint

    assert isinstance(model, CROMA)
    return convert_croma_checkpoint(state, model, source)


def build_scalemae(res: float = 1.0, img_size: int = 224, in_chans: int = 3, **kwargs: Any) -> VisionTransformer:
    """Scale-MAE ViT-L/16 with a GSD-aware fixed sin-cos position embedding (``res`` = GSD ratio)."""
    kwargs.setdefault("model_name", "vit_large_patch16_224")
    name = kwargs.pop("model_name")
    model: VisionTransformer = timm.create_model(  # type: ignore[assignment]
        name, pretrained=False, in_chans=in_chans, img_size=img_size, num_classes=0, **kwargs
    )
    grid = model.patch_embed.grid_size[0]
    model.pos_embed = nn.Parameter(sincos_pos_embed(model.embed_dim, grid, res), requires_grad=False)
    return model


class PrithviEncoder(nn.Module):
    """Prithvi MAE encoder: Conv3d tubelet patch embedding, frame-major tokens, timm blocks, cls-token output.

    Input ``[B, C, T, H, W]`` (or ``[B, C, H, W]`` for one frame, which uses frame 0's position embedding).
    """

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        num_frames: int = 3,
        tubelet_size: int = 1,
        in_chans: int = 6,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        global_pool: str = "token",
    ) -> None:
        super().__init__()
        if img_size % patch_size or num_frames % tubelet_size:
            raise ValueError("img_size must be a multiple of patch_size and num_frames of tubelet_size")
        self.grid = img_size // patch_size
        self.frames = num_frames // tubelet_size
        self.tubelet, self.embed_dim, self.global_pool = tubelet_size, embed_dim, global_pool
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv3d(
            in_chans, embed_dim, (tubelet_size, patch_size, patch_size), (tubelet_size, patch_size, patch_size)
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.frames * self.grid**2, embed_dim), requires_grad=False)
        self.blocks = nn.Sequential(
            *[Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=nn.LayerNorm) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(embed_dim)
        nn.init.normal_(self.cls_token, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        """Pooled features ``[B, D]`` (cls token, or mean of patch tokens with ``global_pool='avg'``)."""
        if x.dim() == 4:
            x = x.unsqueeze(2)
        proj = self.patch_embed.proj
        assert isinstance(proj, nn.Conv3d)
        tokens = proj(x).flatten(2).transpose(1, 2)  # [B, T'·L, D], frame-major
        n = tokens.shape[1]
        if n > self.pos_embed.shape[1] - 1:
            raise ValueError(f"input gives {n} tokens; the position embedding holds {self.pos_embed.shape[1] - 1}")
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        h = torch.cat([cls, tokens + self.pos_embed[:, 1 : n + 1]], 1)
        h = self.norm(self.blocks(h))
        return h[:, 1:].mean(1) if self.global_pool == "avg" else h[:, 0]


def build_prithvi(**kwargs: Any) -> PrithviEncoder:
    """Prithvi-100M encoder (ViT-B/16, 6 HLS bands, 3 frames, tubelet 1) unless overridden."""
    return PrithviEncoder(**kwargs)


#: name -> (builder, key prefixes stripped from the file, key prefixes ignored).
ENCODERS: dict[str, tuple[Callable[..., nn.Module], tuple[str, ...], tuple[str, ...]]] = {
    "ssl4eo": (build_ssl4eo_vit_s16, ("module.",), ("head.", "fc.")),
    "scalemae": (
        build_scalemae,
        ("module.", "model."),
        ("head.", "fc_norm.", "decoder", "mask_token", "fpn", "pos_embed"),
    ),
    "prithvi": (build_prithvi, ("encoder.", "module."), ("decoder", "mask_token")),
    "dofa": (_build_dofa, (), ()),
    "croma": (_build_croma, (), ()),
    "ssl4eo_resnet50": (build_ssl4eo_resnet50, ("module.",), ("fc.",)),
}

#: name -> converter(state, model, source) from the official key layout to the model's own keys.
CONVERTERS: dict[str, Callable[[Mapping[str, Any], nn.Module, str], dict[str, Tensor]]] = {
    "dofa": _convert_dofa,
    "croma": _convert_croma,
}


def load_encoder(kind: str, weights: str | os.PathLike[str] | None = None, **kwargs: Any) -> nn.Module:
    """Build the ``kind`` encoder (see :data:`ENCODERS`; any other name is a timm model) and load local weights.

    Args:
        kind: ``ssl4eo``, ``scalemae``, ``prithvi``, ``dofa``, ``croma``, ``ssl4eo_resnet50`` or a timm model name
            (created with ``num_classes=0``).
        weights: Local ``.safetensors``/torch file in the model's official key layout; random init if ``None``.
        **kwargs: Builder arguments (``in_chans``, ``img_size``, ...).
    """
    model: nn.Module
    if kind in ENCODERS:
        builder, strip, ignore = ENCODERS[kind]
        model = builder(**kwargs)
    else:
        model = timm.create_model(kind, pretrained=False, **{"num_classes": 0, **kwargs})
        strip, ignore = ("module.",), ("head.",)
    if weights is not None:
        state = load_state_dict_file(weights)
        if "model" in state and isinstance(state["model"], dict):  # Scale-MAE / MAE training checkpoints
            state = state["model"]
        state = _strip(state, strip)
        if kind in CONVERTERS:
            state = CONVERTERS[kind](state, model, str(weights))
        load_weights(model, state, str(weights), ignore)
    hook = getattr(model, "after_load", None)
    if callable(hook):
        hook()  # e.g. DOFA's cached patch kernel
    return model.eval()


def input_channels(model: nn.Module) -> int:
    """Input channels of an encoder: its ``in_chans`` attribute, else the first convolution/linear embedding."""
    chans = getattr(model, "in_chans", None)
    if isinstance(chans, int):
        return chans
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Conv3d):
            return int(m.in_channels)
    raise TypeError(f"cannot tell the input channels of {type(model).__name__}")


def encode(model: nn.Module, x: Tensor) -> Tensor:
    """Pooled features ``[B, D]`` of any supported encoder (timm ViT, Prithvi, CSMAE dict output concatenated)."""
    if isinstance(model, VisionTransformer):
        return model.forward_head(model.forward_features(x), pre_logits=True)
    out = model(x)
    if isinstance(out, dict):
        return torch.cat([out[k] for k in sorted(out)], dim=1)
    if not isinstance(out, Tensor) or out.dim() != 2:
        raise TypeError(f"{type(model).__name__} must return pooled [B, D] features")
    return out
