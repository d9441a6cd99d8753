"""HyVIC: adjustable spatio-spectral variational autoencoder with a spatio-spectral mean-scale hyperprior.

Components (names from the paper; their form follows the HyCASS transform and CompressAI's mean-scale
hyperprior, see the package README "Assumptions"):

* ``g_a`` adjustable spatio-spectral encoder: 1x1 spectral conv C->N, S spatial stages (Swin-style residual
  windowed-attention block + stride-2 3x3 conv), 1x1 conv N->M (latent ``y``).
* ``h_a`` spatio-spectral hyperencoder: 1x1 conv M->N, two stride-2 5x5 convs (latent ``z``).
* ``h_s`` spatio-spectral hyperdecoder: two stride-2 5x5 transposed convs, 1x1 conv to 2M (scales, means).
* ``g_s`` adjustable spatio-spectral decoder: mirror of ``g_a`` ending with a sigmoid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from compressai.models import CompressionModel
from rsim.hyvic.entropy import CodecEntropyBottleneck, CodecGaussianConditional
from torch import Tensor, nn

DEFAULT_DEPTHS = (2, 4, 6, 2, 2)
DEFAULT_HEADS = (4, 8, 16, 16, 16)


@dataclass
class HyVICConfig:
    """Hyperparameters of :class:`HyVIC` (stored with every checkpoint).

    Attributes:
        in_channels: Spectral bands C.
        num_stages: Spatial stages S (0-4); each halves H and W.
        width: Feature width N of the transform.
        latent_channels: Latent channels M of ``y``.
        hyper_channels: Channels of the hyper-latent ``z`` (default: ``width``).
        depths: Swin layers per stage (HyCASS defaults).
        heads: Attention heads per stage (HyCASS defaults).
        window: Attention window size.
        mlp_ratio: MLP hidden ratio of the Swin layers.
        drop_path: Maximum stochastic-depth rate (linear over all layers).
    """

    in_channels: int = 202
    num_stages: int = 2
    width: int = 128
    latent_channels: int = 192
    hyper_channels: int | None = None
    depths: Sequence[int] = field(default_factory=lambda: list(DEFAULT_DEPTHS))
    heads: Sequence[int] = field(default_factory=lambda: list(DEFAULT_HEADS))
    window: int = 8
    mlp_ratio: float = 4.0
    drop_path: float = 0.2

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON/YAML safe)."""
        d = asdict(self)
        d["depths"] = list(self.depths)
        d["heads"] = list(self.heads)
        return d

    @property
    def divisor(self) -> int:
        """H and W of a coded tile must be multiples of this (S stages + two hyper strides)."""
        return 2 ** (self.num_stages + 2)


class DropPath(nn.Module):
    """Stochastic depth on the residual branch (per sample)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows with a learned relative position bias."""

    bias_index: Tensor

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.window = window
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("bias_index", rel[..., 0] * (2 * window - 1) + rel[..., 1], persistent=False)
        self._mask_cache: tuple[tuple[Any, ...], Tensor] | None = None

    def _attn_mask(self, bw: int, n: int, mask: Tensor | None, mask_key: Any, dtype: torch.dtype) -> Tensor:
        """Relative position bias (+ shift mask) as an SDPA mask; cached while gradients are off.

        The cache (keyed on shapes, dtype, device and the bias table's version) saves rebuilding and copying
        the (B*nW, heads, n, n) mask in every shifted layer of every tile at inference.
        """
        cacheable = not torch.is_grad_enabled() and (mask is None or mask_key is not None)
        key = (bw, n, dtype, self.bias_table.device, self.bias_table._version, mask_key if mask is not None else None)
        if cacheable and self._mask_cache is not None and self._mask_cache[0] == key:
            return self._mask_cache[1]
        bias = self.bias_table[self.bias_index.reshape(-1)].reshape(n, n, self.heads).permute(2, 0, 1)
        attn_mask = bias.unsqueeze(0).to(dtype)  # (1, heads, n, n)
        if mask is not None:
            nw = mask.shape[0]
            attn_mask = (attn_mask.unsqueeze(0) + mask[None, :, None].to(dtype)).expand(bw // nw, nw, self.heads, n, n)
            attn_mask = attn_mask.reshape(bw, self.heads, n, n)
        if cacheable:
            self._mask_cache = (key, attn_mask.detach())
        return attn_mask

    def forward(self, x: Tensor, mask: Tensor | None, mask_key: Any = None) -> Tensor:
        """Attend within windows.

        Args:
            x: (B*nW, w*w, dim) window tokens.
            mask: (nW, w*w, w*w) additive mask of shifted windows, or None.
            mask_key: Hashable that identifies ``mask`` (e.g. padded map size and shift); enables caching.
        """
        bw, n, dim = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attn_mask = self._attn_mask(bw, n, mask, mask_key, x.dtype)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(bw, n, dim))


class SwinLayer(nn.Module):
    """Swin transformer layer (pre-norm windowed attention + MLP), optionally with shifted windows."""

    def __init__(self, dim: int, heads: int, window: int, shift: bool, mlp_ratio: float, drop_path: float):
        super().__init__()
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.drop_path = DropPath(drop_path)

    def _shift_mask(self, hp: int, wp: int, shift: int, device: torch.device) -> Tensor:
        w = self.window
        region = torch.zeros(hp, wp, device=device)
        count = 0
        for hs in (slice(0, -w), slice(-w, -shift), slice(-shift, None)):
            for ws in (slice(0, -w), slice(-w, -shift), slice(-shift, None)):
                region[hs, ws] = count
                count += 1
        win = region.reshape(hp // w, w, wp // w, w).permute(0, 2, 1, 3).reshape(-1, w * w)
        diff = win[:, None, :] - win[:, :, None]
        return diff.ne(0).float() * -100.0

    def forward(self, x: Tensor) -> Tensor:
        """Apply the layer to a (B, H, W, dim) feature map."""
        b, h, w_, c = x.shape
        win = min(self.window, h, w_)
        shift = win // 2 if (self.shift and win == self.window) else 0
        y = self.norm1(x)
        ph, pw = (-h) % win, (-w_) % win
        if ph or pw:
            y = F.pad(y, (0, 0, 0, pw, 0, ph))
        hp, wp = h + ph, w_ + pw
        if shift:
            y = torch.roll(y, (-shift, -shift), dims=(1, 2))
            mask = self._shift_mask(hp, wp, shift, y.device)  # a function of (hp, wp) only
        else:
            mask = None
        y = y.reshape(b, hp // win, win, wp // win, win, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, win * win, c)
        if win != self.window:
            # Small feature maps: attend over the whole map; the bias table is indexed for `window`, so
            # embed the smaller window in its top-left corner.
            attn = self.attn
            idx = torch.arange(win, device=y.device)
            pos = (idx[:, None] * self.window + idx[None, :]).reshape(-1)
            full = attn.bias_index[pos][:, pos]
            qkv = attn.qkv(y).reshape(y.shape[0], win * win, 3, attn.heads, c // attn.heads).permute(2, 0, 3, 1, 4)
            bias = attn.bias_table[full.reshape(-1)].reshape(win * win, win * win, attn.heads).permute(2, 0, 1)
            out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=bias.unsqueeze(0))
            y = attn.proj(out.transpose(1, 2).reshape(y.shape[0], win * win, c))
        else:
            y = self.attn(y, mask, (hp, wp, shift))
        y = y.reshape(b, hp // win, wp // win, win, win, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
        if shift:
            y = torch.roll(y, (shift, shift), dims=(1, 2))
        y = y[:, :h, :w_]
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class RSTB(nn.Module):
    """Residual Swin transformer block: Swin layers (alternating shifts), a 3x3 conv, and a residual."""

    def __init__(
        self, dim: int, depth: int, heads: int, window: int, mlp_ratio: float, drop_paths: Sequence[float]
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            SwinLayer(dim, heads, window, shift=bool(i % 2), mlp_ratio=mlp_ratio, drop_path=drop_paths[i])
            for i in range(depth)
        )
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """Apply to a (B, dim, H, W) map."""
        y = x.permute(0, 2, 3, 1)
        for layer in self.layers:
            y = layer(y)
        return x + self.conv(y.permute(0, 3, 1, 2))


def _stage_drop_paths(cfg: HyVICConfig) -> list[list[float]]:
    depths = [int(d) for d in cfg.depths[: cfg.num_stages]]
    total = sum(depths)
    rates = torch.linspace(0, cfg.drop_path, total).tolist() if total > 1 else [0.0] * total
    out, i = [], 0
    for d in depths:
        out.append(rates[i : i + d])
        i += d
    return out


class SpatioSpectralEncoder(nn.Sequential):
    """``g_a``: spectral 1x1 conv, S x (RSTB + stride-2 conv), 1x1 conv to M latent channels."""

    def __init__(self, cfg: HyVICConfig) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels, cfg.width, 1), nn.LeakyReLU(inplace=True)]
        for i, dp in enumerate(_stage_drop_paths(cfg)):
            layers += [
                RSTB(cfg.width, int(cfg.depths[i]), int(cfg.heads[i]), cfg.window, cfg.mlp_ratio, dp),
                nn.Conv2d(cfg.width, cfg.width, 3, stride=2, padding=1),
                nn.LeakyReLU(inplace=True),
            ]
        layers.append(nn.Conv2d(cfg.width, cfg.latent_channels, 1))
        super().__init__(*layers)


class SpatioSpectralDecoder(nn.Sequential):
    """``g_s``: 1x1 conv M->N, S x (stride-2 transposed conv + RSTB) in reverse, 1x1 conv to C, sigmoid."""

    def __init__(self, cfg: HyVICConfig) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, cfg.width, 1), nn.LeakyReLU(inplace=True)]
        dps = _stage_drop_paths(cfg)
        for i in reversed(range(cfg.num_stages)):
            layers += [
                nn.ConvTranspose2d(cfg.width, cfg.width, 3, stride=2, padding=1, output_padding=1),
                nn.LeakyReLU(inplace=True),
                RSTB(cfg.width, int(cfg.depths[i]), int(cfg.heads[i]), cfg.window, cfg.mlp_ratio, dps[i][::-1]),
            ]
        layers += [nn.Conv2d(cfg.width, cfg.in_channels, 1), nn.Sigmoid()]
        super().__init__(*layers)


def _hyper_analysis(m: int, n: int, nz: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(m, n, 1),  # spectral (channel) mixing
        nn.LeakyReLU(inplace=True),
        nn.Conv2d(n, n, 5, stride=2, padding=2),  # spatial
        nn.LeakyReLU(inplace=True),
        nn.Conv2d(n, nz, 5, stride=2, padding=2),
    )


def _hyper_synthesis(m: int, n: int, nz: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(nz, n, 5, stride=2, padding=2, output_padding=1),
        nn.LeakyReLU(inplace=True),
        nn.ConvTranspose2d(n, m * 3 // 2, 5, stride=2, padding=2, output_padding=1),
        nn.LeakyReLU(inplace=True),
        nn.Conv2d(m * 3 // 2, 2 * m, 1),  # spectral: (scales, means) per latent channel
    )


class HyVIC(CompressionModel):
    """HyVIC variational compression model (mean-scale hyperprior over a spatio-spectral transform).

    ``forward`` returns ``{"x_hat", "likelihoods": {"y", "z"}}`` (noise in training, rounding in eval);
    ``compress``/``decompress`` produce and read real rANS bitstreams (call :meth:`update` first).
    """

    def __init__(self, config: HyVICConfig | None = None, **kwargs: Any) -> None:
        cfg = config or HyVICConfig(**kwargs)
        nz = cfg.hyper_channels or cfg.width
        super().__init__()
        self.config = cfg
        self.entropy_bottleneck = CodecEntropyBottleneck(nz)
        self.gaussian_conditional = CodecGaussianConditional(None)
        self.g_a = SpatioSpectralEncoder(cfg)
        self.g_s = SpatioSpectralDecoder(cfg)
        self.h_a = _hyper_analysis(cfg.latent_channels, cfg.width, nz)
        self.h_s = _hyper_synthesis(cfg.latent_channels, cfg.width, nz)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def _check(self, x: Tensor) -> None:
        c, d = self.config.in_channels, self.config.divisor
        if x.ndim != 4 or x.shape[1] != c:
            raise ValueError(f"HyVIC expects input (B, {c}, H, W), got {tuple(x.shape)}")
        if x.shape[-2] % d or x.shape[-1] % d:
            raise ValueError(
                f"HyVIC input H and W must be multiples of {d} (S={self.config.num_stages}), got {tuple(x.shape[-2:])}"
            )

    def _params(self, z_hat: Tensor) -> tuple[Tensor, Tensor]:
        scales, means = self.h_s(z_hat).chunk(2, 1)
        return scales, means

    def forward(self, x: Tensor) -> dict[str, Any]:
        """Encode, quantise (noise when training, rounding in eval), decode; return likelihoods."""
        self._check(x)
        y = self.g_a(x)
        z = self.h_a(y)
        z_hat, z_lik = self.entropy_bottleneck(z)
        scales, means = self._params(z_hat)
        y_hat, y_lik = self.gaussian_conditional(y, scales, means=means)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_lik, "z": z_lik}}

    @torch.inference_mode()
    def compress(self, x: Tensor) -> dict[str, Any]:
        """Entropy-code ``x`` into per-sample y and z byte strings (requires :meth:`update`)."""
        self._check(x)
        y = self.g_a(x)
        z = self.h_a(y)
        z_strings = self.entropy_bottleneck.compress(z)
        # What the decoder gets back from z_strings (same rounding around the medians), without decoding them.
        z_hat = self.entropy_bottleneck.quantize(z, "dequantize", self.entropy_bottleneck._get_medians())
        scales, means = self._params(z_hat)
        indexes = self.gaussian_conditional.build_indexes(scales)
        y_strings = self.gaussian_conditional.compress(y, indexes, means=means)
        return {"strings": [y_strings, z_strings], "shape": tuple(z.shape[-2:])}

    @torch.inference_mode()
    def decompress(self, strings: list[list[bytes]], shape: Sequence[int]) -> dict[str, Tensor]:
        """Decode y and z strings produced by :meth:`compress` back to ``x_hat``."""
        if len(strings) != 2:
            raise ValueError(f"expected [y_strings, z_strings], got {len(strings)} lists")
        z_hat = self.entropy_bottleneck.decompress(strings[1], tuple(shape))
        scales, means = self._params(z_hat)
        indexes = self.gaussian_conditional.build_indexes(scales)
        y_hat = self.gaussian_conditional.decompress(strings[0], indexes, means=means)
        return {"x_hat": self.g_s(y_hat)}


def rate_bits(likelihoods: dict[str, Tensor]) -> Tensor:
    """Total estimated bits (-sum log2 p) of all likelihood tensors, per sample (shape (B,))."""
    total = None
    for lik in likelihoods.values():
        bits = -torch.log2(lik).flatten(1).sum(1)
        total = bits if total is None else total + bits
    if total is None:
        raise ValueError("no likelihoods given")
    return total


def rate_bpppc(likelihoods: dict[str, Tensor], num_channels: int, height: int, width: int) -> Tensor:
    """Mean estimated rate in bits per pixel per channel over the batch."""
    return rate_bits(likelihoods).mean() / float(num_channels * height * width)


__all__ = ["HyVIC", "HyVICConfig", "rate_bits", "rate_bpppc"]
