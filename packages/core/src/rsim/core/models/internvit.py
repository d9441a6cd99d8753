"""InternViT-300M-448px (vision encoder of InternVL 2.5 / 3) as a timm ViT, loaded from the official checkpoints.

Two official key layouts are accepted (local files only, nothing is downloaded):

* the standalone ``OpenGVLab/InternViT-300M-448px(-V2_5)`` layout: ``embeddings.class_embedding`` (1, 1, D),
  ``embeddings.position_embedding`` (1, 1 + 32², D), ``embeddings.patch_embedding.{weight,bias}`` (conv 14×14),
  ``encoder.layers.{i}.{norm1,norm2}.{weight,bias}``, ``attn.qkv.{weight,bias}`` (fused q, k, v rows),
  ``attn.proj.*``, ``ls1``/``ls2`` (layer scale vectors), ``mlp.fc1.*``, ``mlp.fc2.*``; no final norm;
* the InternVL chat-model layout (``InternVL2_5-*``/``InternVL3-*``): the same under ``vision_model.``, plus the
  projector ``mlp1.{0,1,3}`` (LayerNorm, Linear, GELU, Linear) applied after a 0.5 pixel shuffle, and
  ``language_model.*`` (ignored here).

The block is the pre-norm ViT block with layer scale, exact GELU, LayerNorm eps 1e-6 and fused qkv with bias, which is
what timm's ``vit_intern300m_patch14_448`` builds (``init_values=0.1, final_norm=False``); transformers'
``InternVLVisionModel`` is the same network with split q/k/v (``tests/test_core_internvit.py`` checks equivalence).
Position embeddings are resized once at load time with the interpolation InternViT applies at run time (bicubic,
``align_corners=False``, no antialiasing), so other ``image_size`` values give the official outputs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import timm
import torch
import torch.nn.functional as F
from rsim.core.errors import DataFormatError, MissingKeyError
from rsim.core.weights import read_state_dict, unwrap_state_dict
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

__all__ = [
    "INTERNVIT_300M",
    "InternVLProjector",
    "convert_internvit_state_dict",
    "create_internvit",
    "create_internvl_projector",
    "extract_internvl_projector_state_dict",
    "internvl_pixel_shuffle",
    "read_checkpoint",
    "resize_internvit_pos_embed",
]

#: InternViT-300M-448px architecture (ViT-L/14 at 448 px, 24 layers, 16 heads, MLP 4096).
INTERNVIT_300M: dict[str, Any] = {"embed_dim": 1024, "depth": 24, "num_heads": 16, "mlp_ratio": 4.0, "patch_size": 14}

_TIMM_NAME = "vit_intern300m_patch14_448"
_CHAT_PREFIX = "vision_model."
_IGNORED_PREFIXES = ("mlp1.", "language_model.")
_EMBEDDINGS = {
    "embeddings.class_embedding": "cls_token",
    "embeddings.position_embedding": "pos_embed",
    "embeddings.patch_embedding.weight": "patch_embed.proj.weight",
    "embeddings.patch_embedding.bias": "patch_embed.proj.bias",
}
_BLOCK = {
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "attn.qkv.weight": "attn.qkv.weight",
    "attn.qkv.bias": "attn.qkv.bias",
    "attn.proj.weight": "attn.proj.weight",
    "attn.proj.bias": "attn.proj.bias",
    "ls1": "ls1.gamma",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
    "mlp.fc1.weight": "mlp.fc1.weight",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.weight": "mlp.fc2.weight",
    "mlp.fc2.bias": "mlp.fc2.bias",
    "ls2": "ls2.gamma",
}
_LAYER_RE = re.compile(r"^encoder\.layers\.(\d+)\.(.+)$")
_PROJECTOR_KEYS = tuple(f"mlp1.{i}.{p}" for i in (0, 1, 3) for p in ("weight", "bias"))


def _wanted(key: str) -> bool:
    return not key.startswith("language_model.")


def read_checkpoint(path: str | os.PathLike[str], *, keep: Callable[[str], bool] = _wanted) -> dict[str, Tensor]:
    """Tensors of a local InternViT/InternVL checkpoint (see :func:`rsim.core.weights.read_state_dict`).

    By default every key but ``language_model.*`` is read, so the vision part of an 8B chat model is read without
    loading the LLM shards.
    """
    return read_state_dict(path, keep=keep)


def convert_internvit_state_dict(state: Mapping[str, Tensor], *, source: str = "state dict") -> dict[str, Tensor]:
    """Official InternViT keys (standalone or ``vision_model.``-prefixed chat layout) → timm ViT keys.

    ``mlp1.*`` (projector) and ``language_model.*`` keys are skipped; see
    :func:`extract_internvl_projector_state_dict` for the projector.

    Args:
        state: The checkpoint's tensors.
        source: File name used in error messages.

    Raises:
        DataFormatError: No InternViT key at all, or vision keys this converter does not know (e.g. the QK-norm of
            InternViT-6B).
        MissingKeyError: An embedding key or a per-layer key of a present layer is absent.
    """
    state = unwrap_state_dict(state)
    chat = any(k.startswith(_CHAT_PREFIX) for k in state)
    prefix = _CHAT_PREFIX if chat else ""
    vision = {
        k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix) and not k.startswith(_IGNORED_PREFIXES)
    }
    if not any(k.startswith(("embeddings.", "encoder.layers.")) for k in vision):
        raise DataFormatError(
            f"{source}: no InternViT keys; expected 'embeddings.class_embedding', 'encoder.layers.0.attn.qkv.weight' "
            f"(standalone) or the same under 'vision_model.' (InternVL chat model); found e.g. {sorted(state)[:5]}"
        )
    out: dict[str, Tensor] = {}
    unexpected: list[str] = []
    layers: dict[int, set[str]] = {}
    for key, value in vision.items():
        if key in _EMBEDDINGS:
            out[_EMBEDDINGS[key]] = value
            continue
        m = _LAYER_RE.match(key)
        if m is None or m.group(2) not in _BLOCK:
            unexpected.append(prefix + key)
            continue
        i, suffix = int(m.group(1)), m.group(2)
        layers.setdefault(i, set()).add(suffix)
        out[f"blocks.{i}.{_BLOCK[suffix]}"] = value
    if unexpected:
        raise DataFormatError(
            f"{source}: unexpected InternViT keys {sorted(unexpected)[:10]}"
            f"{' ...' if len(unexpected) > 10 else ''} ({len(unexpected)} in all); expected only "
            f"{sorted(_EMBEDDINGS)} and encoder.layers.<i>.{{{', '.join(_BLOCK)}}} (QK-norm models are not supported)"
        )
    missing = [prefix + k for k in _EMBEDDINGS if k not in vision]
    depth = max(layers) + 1 if layers else 0
    for i in range(depth):
        missing += [f"{prefix}encoder.layers.{i}.{s}" for s in _BLOCK if s not in layers.get(i, set())]
    if missing:
        raise MissingKeyError(
            f"{source}: missing InternViT keys {missing[:10]}{' ...' if len(missing) > 10 else ''} "
            f"({len(missing)} in all; checkpoint truncated or not an InternViT-300M-class encoder)"
        )
    cls = out["cls_token"]
    if cls.ndim != 3:
        out["cls_token"] = cls.reshape(1, 1, -1)
    return out


def resize_internvit_pos_embed(pos_embed: Tensor, grid: tuple[int, int]) -> Tensor:
    """Resize ``(1, 1 + g², D)`` position embeddings to ``grid`` (h, w) the way InternViT does at run time.

    The class position is kept; the patch positions are resized bicubically (``align_corners=False``, no
    antialiasing) in float32 and cast back.

    Raises:
        DataFormatError: The patch positions do not form a square grid.
    """
    n = pos_embed.shape[1] - 1
    side = round(n**0.5)
    if side * side != n or pos_embed.ndim != 3:
        raise DataFormatError(f"position_embedding of shape {tuple(pos_embed.shape)}: expected (1, 1 + g², D)")
    if (side, side) == tuple(grid):
        return pos_embed
    cls, patches = pos_embed[:, :1], pos_embed[:, 1:]
    dim = pos_embed.shape[-1]
    grid_in = patches.float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
    resized = F.interpolate(grid_in, size=tuple(grid), mode="bicubic", align_corners=False)
    patches = resized.reshape(1, dim, grid[0] * grid[1]).permute(0, 2, 1).to(pos_embed.dtype)
    return torch.cat([cls, patches], dim=1)


def create_internvit(
    weights: str | os.PathLike[str] | Mapping[str, Tensor] | None = None,
    image_size: int = 448,
    *,
    embed_dim: int | None = None,
    depth: int | None = None,
    num_heads: int = 16,
    mlp_ratio: float = 4.0,
    patch_size: int = 14,
    drop_path_rate: float = 0.0,
    dynamic_img_size: bool = False,
) -> VisionTransformer:
    """InternViT-300M-448px as a timm ``VisionTransformer`` (``num_classes=0``, no final norm).

    ``forward_features(x)`` returns ``(B, 1 + (S/14)², D)`` tokens (class token first), equal to the official
    ``last_hidden_state``. Inputs are RGB normalised with the ImageNet mean/std (what InternVL uses).

    Args:
        weights: Local checkpoint (see :func:`read_checkpoint`) or an already-read state dict in an official layout;
            ``None`` gives random initialisation.
        image_size: Input side in pixels (multiple of ``patch_size``); position embeddings are resized when it
            differs from the checkpoint's 448.
        embed_dim: Width; ``None`` = from the checkpoint (1024 without one).
        depth: Layers; ``None`` = from the checkpoint (24 without one).
        num_heads: Attention heads (16 for InternViT-300M; not recoverable from the weights).
        mlp_ratio: MLP width / ``embed_dim`` (4.0).
        patch_size: Patch side (14).
        drop_path_rate: Stochastic depth for fine-tuning (0 in the official inference).
        dynamic_img_size: Let timm resample position embeddings for other input sizes at run time.

    Raises:
        FileNotFoundError: ``weights`` does not exist.
        DataFormatError: Unreadable file, unknown keys or shapes that do not match the architecture.
        MissingKeyError: The checkpoint lacks keys the architecture needs.
    """
    state: dict[str, Tensor] | None = None
    source = "state dict"
    if weights is not None:
        if isinstance(weights, Mapping):
            raw: Mapping[str, Tensor] = weights
        else:
            source = str(weights)
            raw = read_checkpoint(weights)
        state = convert_internvit_state_dict(raw, source=source)
        if embed_dim is None:
            embed_dim = int(state["cls_token"].shape[-1])
        if depth is None:
            depth = 1 + max((int(k.split(".")[1]) for k in state if k.startswith("blocks.")), default=-1)
    model = timm.create_model(
        _TIMM_NAME,
        pretrained=False,
        img_size=image_size,
        patch_size=patch_size,
        embed_dim=INTERNVIT_300M["embed_dim"] if embed_dim is None else embed_dim,
        depth=INTERNVIT_300M["depth"] if depth is None else depth,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
        num_classes=0,
        drop_path_rate=drop_path_rate,
        dynamic_img_size=dynamic_img_size,
    )
    if not isinstance(model, VisionTransformer):
        raise TypeError(f"timm's {_TIMM_NAME} is a {type(model).__name__}, expected a VisionTransformer")
    if state is not None:
        grid = tuple(int(g) for g in model.patch_embed.grid_size)
        state["pos_embed"] = resize_internvit_pos_embed(state["pos_embed"], (grid[0], grid[1]))
        _load_strict(model, state, source)
    return model


def _load_strict(module: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing:
        raise MissingKeyError(f"{source}: the model needs keys the checkpoint lacks (timm names): {missing[:10]}")
    if unexpected:
        raise DataFormatError(f"{source}: keys the model does not have (timm names): {unexpected[:10]}")
    wrong = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if v.shape != own[k].shape
    ]
    if wrong:
        raise DataFormatError(f"{source}: shapes do not match the configured architecture: {wrong[:5]}")
    module.load_state_dict(dict(state), strict=True)


def internvl_pixel_shuffle(x: Tensor, scale: float = 0.5) -> Tensor:
    """InternVL's pixel shuffle (``ps_version`` v2): ``(B, H, W, C)`` → ``(B, H·s, W·s, C/s²)``.

    Each (1/s)×(1/s) block of tokens becomes one token whose channels are ordered (row offset, column offset,
    channel), channel fastest — the order the ``mlp1`` weights expect (``F.pixel_unshuffle`` orders differently).

    Raises:
        ValueError: H or W is not divisible by 1/s.
    """
    b, h, w, c = x.shape
    if abs(h * scale - round(h * scale)) > 1e-6 or abs(w * scale - round(w * scale)) > 1e-6:
        raise ValueError(f"pixel shuffle: grid {h}×{w} is not divisible by 1/scale = {1 / scale:g}")
    x = x.reshape(b, h, round(w * scale), round(c / scale))
    x = x.permute(0, 2, 1, 3).reshape(b, round(w * scale), round(h * scale), round(c / (scale * scale)))
    return x.permute(0, 2, 1, 3).contiguous()


class InternVLProjector(nn.Module):
    """InternVL's vision-to-LLM connector: pixel shuffle, then ``mlp1`` = LayerNorm → Linear → GELU → Linear.

    Args:
        vision_dim: ViT width (1024 for InternViT-300M).
        llm_dim: LLM hidden size (3584 for InternVL3-8B's Qwen2.5-7B).
        downsample_ratio: Pixel-shuffle scale (0.5: 32×32 patches → 16×16 tokens).
    """

    def __init__(self, vision_dim: int, llm_dim: int, downsample_ratio: float = 0.5) -> None:
        super().__init__()
        self.downsample_ratio = downsample_ratio
        in_dim = round(vision_dim / downsample_ratio**2)
        self.mlp1 = nn.Sequential(
            nn.LayerNorm(in_dim), nn.Linear(in_dim, llm_dim), nn.GELU(), nn.Linear(llm_dim, llm_dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        """Patch tokens ``(B, N, C)`` (square grid, class token removed) or ``(B, H, W, C)`` → ``(B, N·s², llm_dim)``.

        Raises:
            ValueError: ``(B, N, C)`` input whose N is not a square.
        """
        if x.ndim == 3:
            side = round(x.shape[1] ** 0.5)
            if side * side != x.shape[1]:
                raise ValueError(f"InternVLProjector: {x.shape[1]} tokens do not form a square grid; pass (B, H, W, C)")
            x = x.reshape(x.shape[0], side, side, x.shape[2])
        x = internvl_pixel_shuffle(x, self.downsample_ratio)
        out: Tensor = self.mlp1(x.reshape(x.shape[0], -1, x.shape[-1]))
        return out


def extract_internvl_projector_state_dict(
    state: Mapping[str, Tensor], *, source: str = "state dict"
) -> dict[str, Tensor] | None:
    """The ``mlp1.{0,1,3}.{weight,bias}`` tensors of an InternVL chat checkpoint, or ``None`` when it has none.

    Raises:
        MissingKeyError: Some but not all projector keys are present.
    """
    state = unwrap_state_dict(state)
    present = [k for k in _PROJECTOR_KEYS if k in state]
    if not present:
        return None
    missing = [k for k in _PROJECTOR_KEYS if k not in state]
    if missing:
        raise MissingKeyError(
            f"{source}: InternVL projector incomplete, missing {missing} (expected {list(_PROJECTOR_KEYS)})"
        )
    return {k: state[k] for k in _PROJECTOR_KEYS}


def create_internvl_projector(
    weights: str | os.PathLike[str] | Mapping[str, Tensor], downsample_ratio: float = 0.5
) -> InternVLProjector | None:
    """:class:`InternVLProjector` with the ``mlp1`` weights of an InternVL chat checkpoint; ``None`` if it has none.

    Sizes come from the weights (``mlp1.1.weight`` is ``(llm_dim, vision_dim / ratio²)``).

    Raises:
        FileNotFoundError: ``weights`` does not exist.
        DataFormatError: Unreadable file or inconsistent projector shapes.
        MissingKeyError: Incomplete projector.
    """
    source = "state dict" if isinstance(weights, Mapping) else str(weights)
    raw = weights if isinstance(weights, Mapping) else read_checkpoint(weights, keep=lambda k: k.startswith("mlp1."))
    state = extract_internvl_projector_state_dict(raw, source=source)
    if state is None:
        return None
    llm_dim, in_dim = state["mlp1.1.weight"].shape
    vision_dim = in_dim * downsample_ratio**2
    if abs(vision_dim - round(vision_dim)) > 1e-6:
        raise DataFormatError(f"{source}: mlp1.1.weight input width {in_dim} is not divisible by 1/ratio² ")
    proj = InternVLProjector(round(vision_dim), int(llm_dim), downsample_ratio)
    _load_strict(proj, state, source)
    return proj
