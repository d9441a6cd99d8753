"""Supervised restoration baseline: a NAFNet-style U-Net (simple gates, channel attention) trained with L1."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _LayerNorm2d(nn.GroupNorm):
    def __init__(self, c: int) -> None:
        super().__init__(1, c)


class NAFBlock(nn.Module):
    """NAFNet block (Chen et al. 2022): LayerNorm, depthwise conv, SimpleGate, simplified channel attention, FFN."""

    def __init__(self, c: int, expand: int = 2) -> None:
        super().__init__()
        dw = c * expand
        self.norm1, self.norm2 = _LayerNorm2d(c), _LayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        self.conv4 = nn.Conv2d(c, dw, 1)
        self.conv5 = nn.Conv2d(dw // 2, c, 1)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    @staticmethod
    def _gate(x: Tensor) -> Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        h = self._gate(self.conv2(self.conv1(self.norm1(x))))
        h = self.conv3(h * self.sca(h))
        y = x + h * self.beta
        h = self.conv5(self._gate(self.conv4(self.norm2(y))))
        return y + h * self.gamma


class NAFUNet(nn.Module):
    """U-Net of NAF blocks predicting a residual added to the input image.

    Args:
        in_channels: 3 (RGB) or 4 (RGB + glint mask).
        out_channels: Output image channels.
        width: Base width.
        enc_blocks: NAF blocks per encoder level.
        middle_blocks: NAF blocks at the bottleneck.
        dec_blocks: NAF blocks per decoder level.
    """

    def __init__(
        self, in_channels: int = 3, out_channels: int = 3, width: int = 16, enc_blocks: Sequence[int] = (1, 1, 2),
        middle_blocks: int = 2, dec_blocks: Sequence[int] = (1, 1, 1),
    ) -> None:  # fmt: skip
        super().__init__()
        self.out_channels = out_channels
        self.intro = nn.Conv2d(in_channels, width, 3, padding=1)
        self.encoders, self.downs, self.ups, self.decoders = (nn.ModuleList() for _ in range(4))
        c = width
        for n in enc_blocks:
            self.encoders.append(nn.Sequential(*[NAFBlock(c) for _ in range(n)]))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle = nn.Sequential(*[NAFBlock(c) for _ in range(middle_blocks)])
        for n in dec_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2)))
            c //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(c) for _ in range(n)]))
        self.ending = nn.Conv2d(width, out_channels, 3, padding=1)
        self.pad_to = 2 ** len(enc_blocks)

    def forward(self, x: Tensor) -> Tensor:
        """Restore ``x`` (B, C, H, W); the first ``out_channels`` input channels are the image."""
        h0, w0 = x.shape[-2:]
        ph, pw = (-h0) % self.pad_to, (-w0) % self.pad_to
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        h = self.intro(xp)
        skips = []
        for enc, down in zip(self.encoders, self.downs, strict=True):
            h = enc(h)
            skips.append(h)
            h = down(h)
        h = self.middle(h)
        for up, dec in zip(self.ups, self.decoders, strict=True):
            h = dec(up(h) + skips.pop())
        out = self.ending(h) + xp[:, : self.out_channels]
        return out[..., :h0, :w0]
