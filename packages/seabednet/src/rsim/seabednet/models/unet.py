"""Single-task baselines of the Seabed-Net comparison: MagicBathyNet's UNet-Bathy and one-branch U-Nets.

* ``UNetBathy``: the modified U-Net of the MagicBathyNet bathymetry benchmark, written from its description in
  the package dossier (encoder 3 -> 32 -> 64 -> 128 -> 256, no BatchNorm, transposed-conv decoder with skips,
  one output channel). Parameter names follow the original state-dict layout (``encoder.0.double_conv.*``,
  ``encoder.{1,2,3}.maxpool_conv.1.double_conv.*``, ``decoder.{0,1,2}.{up,conv}.*``, ``decoder.3``) so that
  MagicBathyNet checkpoints can be loaded with ``load_state_dict``.
* ``SingleTaskUNet``: one branch of Seabed-Net (its ``Encoder`` and ``Decoder`` building blocks, width f, no
  fusion): the bathymetry-only variant has no BatchNorm and one output, the segmentation-only variant has
  BatchNorm and K logits, exactly as the corresponding Seabed-Net branch.

Both accept any input side divisible by 8 (smaller sides work too; the decoder pads to the skip size).
"""

from __future__ import annotations

import itertools

from rsim.seabednet.models.seabednet import Decoder, DoubleConv, Encoder, SeabedNet, Up
from torch import Tensor, nn

__all__ = ["SingleTaskUNet", "UNetBathy", "head_channels", "network_heads"]


class _Down(nn.Module):
    """2x2 max-pool then DoubleConv (keys ``maxpool_conv.1.double_conv.*``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels, batch_norm=False))

    def forward(self, x: Tensor) -> Tensor:
        """Downsample and convolve."""
        return self.maxpool_conv(x)


class UNetBathy(nn.Module):
    """MagicBathyNet UNet-Bathy: 4-level U-Net (32, 64, 128, 256 channels), no BatchNorm, 1x1 depth head.

    Args:
        in_channels: Image bands.
        out_channels: Depth channels (1).
        widths: Channels per level (MagicBathyNet: 32, 64, 128, 256); each level doubles the previous one.
    """

    def __init__(
        self, in_channels: int = 3, out_channels: int = 1, widths: tuple[int, ...] = (32, 64, 128, 256)
    ) -> None:
        super().__init__()
        if len(widths) != 4 or any(b != 2 * a for a, b in itertools.pairwise(widths)):
            raise ValueError(f"widths must be 4 doubling channel counts, got {widths}")
        self.in_channels = in_channels
        self.bathy_channels = out_channels
        self.num_classes = 0
        w = widths
        self.encoder = nn.Sequential(
            DoubleConv(in_channels, w[0], batch_norm=False), _Down(w[0], w[1]), _Down(w[1], w[2]), _Down(w[2], w[3])
        )
        self.decoder = nn.Sequential(
            Up(w[3], w[2], batch_norm=False),  # ConvTranspose2d(256, 128, 2, stride 2), cat skip, DoubleConv(256, 128)
            Up(w[2], w[1], batch_norm=False),
            Up(w[1], w[0], batch_norm=False),
            nn.Conv2d(w[0], out_channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Depth ``[B, out_channels, H, W]`` (normalised units)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input [B, {self.in_channels}, H, W], got {tuple(x.shape)}")
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        for i, skip in enumerate((skips[2], skips[1], skips[0])):
            x = self.decoder[i](x, skip)
        return self.decoder[3](x)


class SingleTaskUNet(nn.Module):
    """One Seabed-Net branch without fusion: ``Encoder`` (f, 2f, 4f, 8f) + ``Decoder``.

    Args:
        in_channels: Image bands.
        features: Width f (Seabed-Net: 64).
        task: ``bathymetry`` (no BatchNorm, 1 depth channel) or ``segmentation`` (BatchNorm, ``num_classes``
            logits), as the corresponding Seabed-Net branch.
        num_classes: Class logits K for ``segmentation`` (including "undefined").
    """

    def __init__(
        self, in_channels: int = 3, features: int = 64, task: str = "bathymetry", num_classes: int = 5
    ) -> None:
        super().__init__()
        if task not in ("bathymetry", "segmentation"):
            raise ValueError(f"task must be 'bathymetry' or 'segmentation', got {task!r}")
        bn = task == "segmentation"
        out = num_classes if bn else 1
        self.in_channels = in_channels
        self.task = task
        self.bathy_channels = 0 if bn else 1
        self.num_classes = num_classes if bn else 0
        self.encoder = Encoder(in_channels, features, batch_norm=bn)
        self.decoder = Decoder(features, out, batch_norm=bn)

    def forward(self, x: Tensor) -> Tensor:
        """Depth ``[B, 1, H, W]`` or logits ``[B, K, H, W]``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input [B, {self.in_channels}, H, W], got {tuple(x.shape)}")
        return self.decoder(self.encoder(x))


def head_channels(net: nn.Module) -> tuple[int, int]:
    """``(depth channels, class logits)`` of a network; 0 for a head it does not have."""
    if isinstance(net, SeabedNet):
        return net.bathy_decoder.out_conv.out_channels, net.seg_decoder.out_conv.out_channels
    return int(getattr(net, "bathy_channels", 0)), int(getattr(net, "num_classes", 0))


def network_heads(net: nn.Module, x: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """Run any of the package's networks and return ``(depth or None, logits or None)``.

    Seabed-Net returns both; ``UNetBathy`` and the bathymetry ``SingleTaskUNet`` only depth; the segmentation
    ``SingleTaskUNet`` only logits.
    """
    out = net(x)
    if isinstance(out, tuple):
        return out[0], out[1]
    if head_channels(net)[1]:
        return None, out
    return out, None
