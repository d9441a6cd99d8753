"""DOFA (Dynamic One-For-All, Xiong et al. 2024): wavelength-conditioned dynamic patch embedding + timm ViT blocks.

Written from the published model structure (facts only, no code copied). Key layout of the released checkpoints
(``DOFA_ViT_base_e100.pth`` / torchgeo ``dofa_base_patch16_224-a0275954.pth``) [code: zhu-xlab/DOFA
``models_dwv.py`` and torchgeo ``torchgeo/models/dofa.py``, which loads that file with ``strict=False`` and allows
exactly ``fc_norm.*`` and ``head.*`` to be missing]:

- ``cls_token [1, 1, D]``, ``pos_embed [1, 1 + L, D]`` (fixed 2-D sin-cos table, stored in the file),
- ``patch_embed.fclayer.{w1,w2}.{weight,bias}`` (residual MLP on the wavelength embedding, width 128),
- ``patch_embed.weight_generator.{weight_tokens [128, 128], bias_token [1, 128]}``,
  ``patch_embed.weight_generator.transformer_encoder.layers.0.*`` (one ``nn.TransformerEncoderLayer``, 4 heads,
  GELU, post-norm, feed-forward 2048), ``patch_embed.weight_generator.fc_weight [k·k·D, 128]``,
  ``patch_embed.weight_generator.fc_bias [D, 128]``,
- ``blocks.N.*`` (timm ``Block``, qkv bias, LayerNorm eps 1e-6),
- optional ``fc_norm.*`` (global-pool head norm) / ``norm.*`` (cls-token variant) and ``head.*``.

Forward: each band's wavelength (µm) × 1000 gets a 1-D sin-cos embedding (128), the residual MLP, then the
transformer weight generator turns [128 weight tokens, band tokens, bias token] into a ``[D, C, k, k]`` kernel
(band token outputs + their input, ``fc_weight``, viewed ``(C, k, k, D)``) and a ``[D]`` bias (``fc_bias`` of the
bias token), both × 0.01; the patch convolution uses stride ``k`` and padding 1 [code].
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import Tensor, nn

__all__ = [
    "S2_WAVELENGTHS",
    "DOFAEmbedding",
    "DOFAEncoder",
    "build_dofa",
    "convert_dofa_checkpoint",
    "wavelength_embedding",
]

#: Sentinel-2 MSI central wavelengths in µm, bands B01..B12 incl. B8A and B10 (ESA S2 MSI user guide) [code].
S2_WAVELENGTHS: tuple[float, ...] = (
    0.443, 0.490, 0.560, 0.665, 0.705, 0.740, 0.783, 0.842, 0.865, 0.945, 1.375, 1.610, 2.190,
)  # fmt: skip

#: DOFA sizes: (embed_dim, depth, num_heads) [code: torchgeo dofa_{small,base,large}_patch16_224].
DOFA_SIZES: dict[str, tuple[int, int, int]] = {"small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16)}


def wavelength_embedding(dim: int, positions: Tensor) -> Tensor:
    """1-D sin-cos embedding ``[M, dim]`` of ``positions`` (first half sines, second half cosines)."""
    if dim % 2:
        raise ValueError(f"wavelength embedding needs an even width, got {dim}")
    freqs = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float32, device=positions.device) / (dim / 2.0))
    angles = positions.float().reshape(-1, 1) * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class _ResidualMLP(nn.Module):
    """``x + relu(w2(relu(w1(x))))`` on the wavelength embedding (keys ``w1``, ``w2``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, dim)
        self.w2 = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return x + F.relu(self.w2(F.relu(self.w1(x))))


class _WeightGenerator(nn.Module):
    """Transformer over [weight tokens, band tokens, bias token] giving per-band kernels and a shared bias."""

    def __init__(self, dim: int, kernel_numel: int, embed_dim: int, num_tokens: int = 128, num_heads: int = 4) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            d_model=dim, nhead=num_heads, activation="gelu", norm_first=False, batch_first=False, dropout=0.0
        )
        self.transformer_encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.fc_weight = nn.Linear(dim, kernel_numel)
        self.fc_bias = nn.Linear(dim, embed_dim)
        self.weight_tokens = nn.Parameter(torch.empty(num_tokens, dim).normal_(std=0.02))
        self.bias_token = nn.Parameter(torch.empty(1, dim).normal_(std=0.02))

    def forward(self, bands: Tensor) -> tuple[Tensor, Tensor]:
        n_tok = self.weight_tokens.shape[0]
        seq = torch.cat([self.weight_tokens, bands, self.bias_token], dim=0)
        out = self.transformer_encoder(seq)
        return self.fc_weight(out[n_tok:-1] + bands), self.fc_bias(out[-1])


class DOFAEmbedding(nn.Module):
    """Wavelength-conditioned dynamic patch embedding: ``[B, C, H, W]`` + ``C`` wavelengths -> ``[B, L, D]``.

    Args:
        embed_dim: Output width ``D``.
        kernel_size: Patch size ``k`` (stride ``k``).
        wv_planes: Width of the wavelength embedding and the weight generator (128 in DOFA).
        padding: Convolution padding (1 in the released DOFA code) [code].
        scaler: Factor on the generated kernel and bias (0.01) [code].
    """

    def __init__(
        self, embed_dim: int, kernel_size: int = 16, wv_planes: int = 128, padding: int = 1, scaler: float = 0.01
    ) -> None:
        super().__init__()
        self.embed_dim, self.kernel_size, self.wv_planes = embed_dim, kernel_size, wv_planes
        self.padding, self.scaler = padding, scaler
        self.out_channels = embed_dim  # < embed_dim after residual-width slimming (the generator stays whole)
        self.cached_weight: Tensor | None
        self.cached_bias: Tensor | None
        self.register_buffer("cached_weight", None, persistent=False)
        self.register_buffer("cached_bias", None, persistent=False)
        self.weight_generator = _WeightGenerator(wv_planes, kernel_size * kernel_size * embed_dim, embed_dim)
        self.fclayer = _ResidualMLP(wv_planes)
        for m in (*self.weight_generator.modules(), *self.fclayer.modules()):
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.constant_(m.bias, 0.01)

    def kernel(self, wavelengths: Tensor) -> tuple[Tensor, Tensor]:
        """Generated convolution weight ``[D, C, k, k]`` and bias ``[D]`` for bands of ``wavelengths`` (µm)."""
        waves = self.fclayer(wavelength_embedding(self.wv_planes, wavelengths * 1000))
        weight, bias = self.weight_generator(waves)
        k, d = self.kernel_size, self.out_channels
        weight = weight.view(len(wavelengths), k, k, d).permute(3, 0, 1, 2)
        return weight * self.scaler, bias.view(d) * self.scaler

    @torch.no_grad()
    def cache(self, wavelengths: Tensor) -> None:
        """Generate the kernel for ``wavelengths`` once and reuse it while ``forward`` gets ``use_cache=True``."""
        self.cached_weight, self.cached_bias = self.kernel(wavelengths)

    def forward(self, x: Tensor, wavelengths: Tensor, use_cache: bool = False) -> Tensor:
        """Patch tokens ``[B, L, D]`` (``use_cache``: the kernel from :meth:`cache`, if there is one)."""
        if x.shape[1] != len(wavelengths):
            raise ValueError(f"DOFA input has {x.shape[1]} bands but {len(wavelengths)} wavelengths were given")
        if use_cache and self.cached_weight is not None and self.cached_bias is not None:
            weight, bias = self.cached_weight, self.cached_bias
        else:
            weight, bias = self.kernel(wavelengths.to(x.device))
        out = F.conv2d(x, weight, bias, stride=self.kernel_size, padding=self.padding)
        return out.flatten(2).transpose(1, 2)

    def slim_output(self, keep: int) -> DOFAEmbedding:
        """A copy producing the first ``keep`` embedding channels (residual-width slimming)."""
        out = copy.deepcopy(self)
        gen = out.weight_generator
        d = self.out_channels
        rows = torch.arange(gen.fc_weight.out_features).view(-1, d)[:, :keep].reshape(-1)  # (k, k, D) -> D fastest
        gen.fc_weight = _sub_linear(gen.fc_weight, rows)
        gen.fc_bias = _sub_linear(gen.fc_bias, torch.arange(keep))
        out.out_channels = keep
        if self.cached_weight is not None and self.cached_bias is not None:
            out.cached_weight, out.cached_bias = self.cached_weight[:keep].clone(), self.cached_bias[:keep].clone()
        return out


def _sub_linear(layer: nn.Linear, rows: Tensor) -> nn.Linear:
    new = nn.Linear(layer.in_features, len(rows), bias=layer.bias is not None)
    with torch.no_grad():
        new.weight.copy_(layer.weight[rows.to(layer.weight.device)])
        if layer.bias is not None:
            new.bias.copy_(layer.bias[rows.to(layer.weight.device)])
    return new.to(layer.weight.device, layer.weight.dtype)


class DOFAEncoder(nn.Module):
    """DOFA ViT encoder returning pooled features ``[B, D]``.

    Args:
        wavelengths: Band wavelengths in µm used when ``forward`` gets none (default: the 13 Sentinel-2 bands).
        img_size: Input size (sets the position-table length).
        patch_size: Patch size.
        embed_dim: Width ``D``.
        depth: Number of blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width / ``D``.
        wv_planes: Wavelength-embedding width.
        global_pool: ``avg`` (mean of patch tokens then ``norm``; DOFA's default ``global_pool=True``) or
            ``token`` (``norm`` then the cls token).
        patch_padding: Padding of the dynamic patch convolution [code: 1].
        cache_kernel: Generate the patch kernel of the default ``wavelengths`` once (after loading, see
            :meth:`after_load`) instead of in every forward. The released model regenerates it per forward [code];
            caching removes the batch-independent weight-generator cost (≈0.8 GFLOPs for DOFA-base, 13 bands)
            from the FLOP count [assumption: a deployed model with fixed bands would precompute it].
    """

    def __init__(
        self,
        wavelengths: Sequence[float] = S2_WAVELENGTHS,
        img_size: int = 224,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        wv_planes: int = 128,
        global_pool: str = "avg",
        patch_padding: int = 1,
        cache_kernel: bool = False,
    ) -> None:
        super().__init__()
        if global_pool not in ("avg", "token"):
            raise ValueError(f"global_pool must be 'avg' or 'token', got {global_pool!r}")
        self.global_pool, self.embed_dim, self.img_size = global_pool, embed_dim, img_size
        self.cache_kernel = cache_kernel
        self.register_buffer("wavelengths", torch.tensor(list(wavelengths), dtype=torch.float32), persistent=False)
        self.patch_embed = DOFAEmbedding(embed_dim, patch_size, wv_planes, padding=patch_padding)
        grid = (img_size + 2 * patch_padding - patch_size) // patch_size + 1
        self.num_patches = grid * grid
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.num_patches, embed_dim), requires_grad=False)
        norm: Any = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.ModuleList(
            [Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        nn.init.normal_(self.cls_token, std=0.02)

    @property
    def in_chans(self) -> int:
        """Number of bands of the default wavelength list."""
        wavelengths: Tensor = self.wavelengths  # type: ignore[assignment]
        return int(wavelengths.numel())

    def after_load(self) -> None:
        """Called by ``load_encoder`` once the weights are in: caches the default kernel if ``cache_kernel``."""
        if self.cache_kernel:
            self.patch_embed.cache(self.wavelengths)  # type: ignore[arg-type]

    def forward_tokens(self, x: Tensor, wavelengths: Tensor | Sequence[float] | None = None) -> Tensor:
        """All tokens after the blocks ``[B, 1 + L, D]`` (before the final norm)."""
        waves = self.wavelengths if wavelengths is None else torch.as_tensor(wavelengths, dtype=torch.float32)
        tokens = self.patch_embed(x, waves, use_cache=wavelengths is None)
        if tokens.shape[1] != self.num_patches:
            raise ValueError(f"input gives {tokens.shape[1]} patches; the position table holds {self.num_patches}")
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        h = torch.cat([cls, tokens + self.pos_embed[:, 1:]], dim=1)
        for block in self.blocks:
            h = block(h)
        return h

    def forward(self, x: Tensor, wavelengths: Tensor | Sequence[float] | None = None) -> Tensor:
        """Pooled features ``[B, D]`` of ``x`` ``[B, C, H, W]`` whose bands have ``wavelengths`` (µm)."""
        h = self.forward_tokens(x, wavelengths)
        if self.global_pool == "avg":
            return self.norm(h[:, 1:].mean(dim=1))
        return self.norm(h)[:, 0]


def build_dofa(size: str = "base", **kwargs: Any) -> DOFAEncoder:
    """DOFA ViT-{small,base,large}/16 (``embed_dim``/``depth``/``num_heads`` may be overridden for tests)."""
    if size not in DOFA_SIZES:
        raise ValueError(f"DOFA size must be one of {sorted(DOFA_SIZES)}, got {size!r}")
    dim, depth, heads = DOFA_SIZES[size]
    kwargs = {"embed_dim": dim, "depth": depth, "num_heads": heads, **kwargs}
    return DOFAEncoder(**kwargs)


def convert_dofa_checkpoint(state: Mapping[str, Any], model: DOFAEncoder, source: str = "DOFA") -> dict[str, Tensor]:
    """Map a released DOFA state dict onto :class:`DOFAEncoder` keys.

    Strips ``module.``/``encoder.`` prefixes, drops ``head.*`` and MAE-decoder keys (``decoder*``, ``mask_token``),
    renames ``fc_norm.*`` (or ``norm.*``) to ``norm.*``. The released weights hold no head norm (torchgeo: "fc_norm
    and head are generated dynamically"); then the model's freshly initialised ``norm`` (identity affine) is kept.

    Raises:
        KeyError: If a ``patch_embed``/``blocks`` key is missing (naming ``source`` and the key).
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        key = re.sub(r"^(module\.|encoder\.)+", "", key)
        if key.startswith(("head.", "decoder", "mask_token")):
            continue
        if key.startswith("fc_norm."):
            key = "norm." + key[len("fc_norm.") :]
        out[key] = value
    own = model.state_dict()
    for key in ("norm.weight", "norm.bias"):
        out.setdefault(key, own[key].clone())
    missing = [k for k in own if k not in out]
    if missing:
        raise KeyError(f"{source}: DOFA checkpoint lacks {missing[:5]} (expected the zhu-xlab/torchgeo key layout)")
    return out
