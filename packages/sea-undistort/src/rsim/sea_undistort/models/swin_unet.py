"""Swin-UNet denoiser conditioned on the LQ image (the architecture family of ResShift's ``UNetModelSwin``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.models.swin_transformer import SwinTransformerBlock
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of (float) timesteps, ``(B, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, channels), channels)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv residual block with scale-shift time conditioning."""

    def __init__(self, channels: int, out_channels: int, emb_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(_norm(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * out_channels))
        self.out_norm = _norm(out_channels)
        last = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)  # type: ignore[arg-type]
        self.out_layers = nn.Sequential(nn.SiLU(), nn.Dropout(dropout), last)
        self.skip = nn.Identity() if channels == out_channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:  # noqa: D102
        h = self.in_layers(x)
        scale, shift = self.emb(emb)[..., None, None].chunk(2, dim=1)
        h = self.out_layers(self.out_norm(h) * (1 + scale) + shift)
        return self.skip(x) + h


class SwinBlock(nn.Module):
    """``depth`` timm Swin Transformer blocks (alternating shifted windows) inside a 1×1 projection, residual."""

    def __init__(
        self, channels: int, embed_dim: int, depth: int, window_size: int, head_dim: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        self.norm = _norm(channels)
        self.proj_in = nn.Conv2d(channels, embed_dim, 1)
        heads = max(1, embed_dim // head_dim)
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(
                embed_dim,
                (window_size * 2, window_size * 2),
                num_heads=heads,
                window_size=window_size,
                shift_size=0 if i % 2 == 0 else window_size // 2,
                mlp_ratio=mlp_ratio,
                dynamic_mask=True,
                always_partition=True,
            )
            for i in range(depth)
        )
        proj_out = nn.Conv2d(embed_dim, channels, 1)
        nn.init.zeros_(proj_out.weight)
        nn.init.zeros_(proj_out.bias)  # type: ignore[arg-type]
        self.proj_out = proj_out

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        h = self.proj_in(self.norm(x)).permute(0, 2, 3, 1)
        for block in self.blocks:
            h = block(h)
        return x + self.proj_out(h.permute(0, 3, 1, 2))


class LQEncoder(nn.Module):
    """LQ feature extractor: conv stages (Conv3×3 → SiLU → strided downsample) from image to latent resolution.

    With ``in_channels=4`` the glint mask is early-fused as the 4th channel (ResShift+EF).
    """

    def __init__(self, in_channels: int = 3, widths: Sequence[int] = (16, 32, 64), downsample: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1), nn.SiLU()]
        for i in range(len(widths) - 1):
            stride = 2 if i < downsample else 1
            layers += [nn.Conv2d(widths[i], widths[i + 1], 3, stride=stride, padding=1), nn.SiLU()]
        for _ in range(max(0, downsample - (len(widths) - 1))):
            layers += [nn.Conv2d(widths[-1], widths[-1], 3, stride=2, padding=1), nn.SiLU()]
        self.net = nn.Sequential(*layers)
        self.out_channels = widths[-1]

    def forward(self, lq: Tensor) -> Tensor:  # noqa: D102
        return self.net(lq)


class SwinUNet(nn.Module):
    """U-Net of residual blocks with Swin attention blocks at chosen downsampling rates, predicting x0.

    Input: noisy (scaled) latent ``x`` (``latent_channels``), 0-based step ``t`` and the LQ image (+ mask) which the
    :class:`LQEncoder` maps to ``lq_channels`` features at the latent resolution, concatenated to ``x``.

    Args:
        latent_channels: Channels of x_t and of the output.
        lq_in_channels: 3 (RGB) or 4 (RGB + glint mask, early fusion).
        lq_widths: LQ encoder widths (output width = last).
        lq_downsample: Image → latent downsampling steps (2 for f4, 0 in pixel space).
        model_channels: Base width (160 in the paper config [code]).
        channel_mult: Width multipliers per level ([1, 2, 2, 4] [code]).
        num_res_blocks: Residual blocks per level (2 [code]).
        attention_levels: Downsampling rates (1, 2, 4, 8...) that get a Swin block ([1, 2, 4, 8] = [64, 32, 16, 8] px).
        swin_depth: Swin blocks per attention block (2 [code]).
        swin_embed_dim: Swin width (192 [code]).
        window_size: Swin window (8 [code]).
        head_dim: Channels per head (32 [code]).
        mlp_ratio: Swin MLP ratio (4 [code]).
        dropout: Residual-block dropout.
    """

    def __init__(
        self, latent_channels: int = 3, lq_in_channels: int = 3, lq_widths: Sequence[int] = (16, 32, 64),
        lq_downsample: int = 2, model_channels: int = 160, channel_mult: Sequence[int] = (1, 2, 2, 4),
        num_res_blocks: int = 2, attention_levels: Sequence[int] = (1, 2, 4, 8), swin_depth: int = 2,
        swin_embed_dim: int = 192, window_size: int = 8, head_dim: int = 32, mlp_ratio: float = 4.0,
        dropout: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.lq_encoder = LQEncoder(lq_in_channels, lq_widths, lq_downsample)
        self.levels = len(channel_mult)
        emb_dim = model_channels * 4
        self.model_channels = model_channels
        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        def attn(ch: int, rate: int) -> nn.Module:
            if rate not in attention_levels:
                return nn.Identity()
            return SwinBlock(ch, swin_embed_dim, swin_depth, window_size, head_dim, mlp_ratio)

        self.conv_in = nn.Conv2d(latent_channels + self.lq_encoder.out_channels, model_channels, 3, padding=1)
        self.down = nn.ModuleList()
        self.down_attn = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips = [model_channels]
        ch, rate = model_channels, 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                self.down.append(ResBlock(ch, model_channels * mult, emb_dim, dropout))
                ch = model_channels * mult
                self.down_attn.append(attn(ch, rate))
                skips.append(ch)
            if level < self.levels - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
                rate *= 2
        self.mid = nn.ModuleList([ResBlock(ch, ch, emb_dim, dropout), ResBlock(ch, ch, emb_dim, dropout)])
        self.mid_attn = SwinBlock(ch, swin_embed_dim, swin_depth, window_size, head_dim, mlp_ratio)
        self.up = nn.ModuleList()
        self.up_attn = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for _ in range(num_res_blocks + 1):
                self.up.append(ResBlock(ch + skips.pop(), model_channels * mult, emb_dim, dropout))
                ch = model_channels * mult
                self.up_attn.append(attn(ch, rate))
            if level > 0:
                self.upsample.append(nn.Conv2d(ch, ch, 3, padding=1))
                rate //= 2
        self.num_res_blocks = num_res_blocks
        self.out = nn.Sequential(_norm(ch), nn.SiLU(), nn.Conv2d(ch, latent_channels, 3, padding=1))

    def forward(self, x: Tensor, t: Tensor, lq: Tensor) -> Tensor:
        """Predict x0 from scaled ``x`` (B, C, h, w), steps ``t`` (B,) and ``lq`` (B, 3|4, H, W)."""
        pad_to = 2 ** (self.levels - 1)
        h0, w0 = x.shape[-2:]
        cond = self.lq_encoder(lq)
        if cond.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"LQ features {tuple(cond.shape[-2:])} do not match the latent {tuple(x.shape[-2:])}")
        h = torch.cat([x, cond], dim=1)
        ph, pw = (-h0) % pad_to, (-w0) % pad_to
        if ph or pw:
            h = F.pad(h, (0, pw, 0, ph), mode="reflect" if min(h0, w0) > max(ph, pw) else "replicate")
        emb = self.time_embed(timestep_embedding(t, self.model_channels))
        h = self.conv_in(h)
        skips = [h]
        i = 0
        for level in range(self.levels):
            for _ in range(self.num_res_blocks):
                h = self.down_attn[i](self.down[i](h, emb))
                skips.append(h)
                i += 1
            if level < self.levels - 1:
                h = self.downsample[level](h)
                skips.append(h)
        h = self.mid_attn(self.mid[0](h, emb))
        h = self.mid[1](h, emb)
        i = 0
        for level in range(self.levels):
            for _ in range(self.num_res_blocks + 1):
                h = self.up_attn[i](self.up[i](torch.cat([h, skips.pop()], dim=1), emb))
                i += 1
            if level < self.levels - 1:
                h = self.upsample[level](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(h)[..., :h0, :w0]
