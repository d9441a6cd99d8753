"""RadioNet256to32: a U-Net with SDU dilated blocks (adapted from SAIPP-Net), 256² environment rasters → 32² map.

Re-implemented from the architecture description and the key/shape manifests in
``shared/reference/radionet256to32`` (no original code). At ``width_mult=1`` the state dict has exactly the keys and
shapes of the published checkpoints, minus eight scalar parameters that the original never uses in the forward
(``delta_*``, ``material_weights``; :func:`rsim.radiomap.models.convert.convert_state_dict` drops them).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["BASE_WIDTHS", "INITS", "RadioNet256to32", "SDUBlock", "init_weights", "radionet_any_size", "scaled_width"]

#: encoder stages 1-6, bottleneck; decoder stages use 512, 512, 256
BASE_WIDTHS = (32, 64, 128, 256, 512, 512, 1024)
DILATIONS = (1, 3, 6, 9, 12)
#: weight initialisations: ``kaiming`` (He-normal, zero biases; default) or ``torch`` (PyTorch's layer defaults, as in
#: the original code)
INITS = ("kaiming", "torch")


def scaled_width(base: int, width_mult: float) -> int:
    """Width ``base * width_mult`` rounded to a multiple of 16 (the SDU block splits n into n/2…n/16), at least 16."""
    if width_mult == 1.0:
        return base
    return max(16, round(base * width_mult / 16) * 16)


class SDUBlock(nn.Module):
    """Five chained dilated 3x3 convs (dilation 1, 3, 6, 9, 12; widths n/2 … n/16, n/16), outputs concatenated."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if out_channels % 16:
            raise ValueError(f"SDUBlock: out_channels must be a multiple of 16, got {out_channels}")
        widths = (out_channels // 2, out_channels // 4, out_channels // 8, out_channels // 16, out_channels // 16)
        prev = in_channels
        for i, (w, d) in enumerate(zip(widths, DILATIONS, strict=True), start=1):
            self.add_module(f"conv{i}", nn.Conv2d(prev, w, 3, padding=d, dilation=d))
            prev = w

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        outs = []
        for i in range(1, 6):
            x = torch.relu(getattr(self, f"conv{i}")(x))
            outs.append(x)
        return torch.cat(outs, dim=1)


def _conv_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


def _up_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 2, stride=2), nn.ReLU(inplace=True))


class RadioNet256to32(nn.Module):
    """U-Net with SDU blocks: ``[B, inputs, H, W] → [B, 1, H/8, W/8]`` (H, W multiples of 64), no output activation.

    Args:
        inputs: Number of input channels (32 for the default 29 class slices + Tx one-hot + Tx distance + observations).
        width_mult: Channel multiplier (1.0 = published checkpoints; smaller values for CPU runs; widths are rounded
            to multiples of 16).
        init: Weight initialisation, see :func:`init_weights` (irrelevant when a checkpoint is loaded).
    """

    def __init__(self, inputs: int = 32, width_mult: float = 1.0, init: str = "kaiming") -> None:
        super().__init__()
        if inputs < 1:
            raise ValueError(f"RadioNet256to32: inputs must be >= 1, got {inputs}")
        if init not in INITS:
            raise ValueError(f"RadioNet256to32: init must be one of {INITS}, got {init!r}")
        self.inputs = inputs
        self.width_mult = width_mult
        e = [scaled_width(w, width_mult) for w in BASE_WIDTHS]
        prev = inputs
        for i in range(6):
            setattr(self, f"encode{i + 1}_conv", _conv_relu(prev, e[i]))
            setattr(self, f"encode{i + 1}_sdu", SDUBlock(e[i], e[i]))
            prev = e[i]
        self.bottleneck_conv = _conv_relu(prev, e[6])
        self.bottleneck_sdu = SDUBlock(e[6], e[6])
        # decoder: (upsampled width, skip = encoder stage 6, 5, 4)
        dec = [(e[6], scaled_width(512, width_mult), e[5]), (None, scaled_width(512, width_mult), e[4]),
               (None, scaled_width(256, width_mult), e[3])]  # fmt: skip
        prev = e[6]
        for i, (_, width, skip) in enumerate(dec, start=1):
            setattr(self, f"upconv{i}", _up_relu(prev, width))
            setattr(self, f"decode{i}_conv", _conv_relu(width + skip, width))
            setattr(self, f"decode{i}_sdu", SDUBlock(width, width))
            prev = width
        self.output = nn.Conv2d(prev, 1, 1)
        self.pool = nn.MaxPool2d(2)
        if init == "kaiming":
            init_weights(self)

    def forward(self, x: Tensor, z: Tensor | None = None) -> Tensor:
        """Predict the path-loss map on the grey scale; ``z`` is accepted for signature compatibility and ignored."""
        if x.ndim != 4 or x.shape[1] != self.inputs:
            raise ValueError(f"RadioNet256to32: expected input [B, {self.inputs}, H, W], got {tuple(x.shape)}")
        if x.shape[-1] % 64 or x.shape[-2] % 64:
            raise ValueError(f"RadioNet256to32: H and W must be multiples of 64, got {tuple(x.shape[-2:])}")
        skips = []
        for i in range(1, 7):
            x = getattr(self, f"encode{i}_sdu")(getattr(self, f"encode{i}_conv")(x))
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck_sdu(self.bottleneck_conv(x))
        for i, skip in zip(range(1, 4), (skips[5], skips[4], skips[3]), strict=True):
            x = getattr(self, f"upconv{i}")(x)
            x = torch.cat([x, skip], dim=1)
            x = getattr(self, f"decode{i}_sdu")(getattr(self, f"decode{i}_conv")(x))
        out: Tensor = self.output(x)
        return out


@torch.no_grad()
def init_weights(model: nn.Module) -> None:
    """He-normal initialisation for the ReLU network (zero biases), variance-preserving through all ~24 layers.

    PyTorch's default layer init shrinks the activation variance about sixfold per conv + ReLU; without normalisation
    layers the signal of this deep ReLU U-Net vanishes (output std ≈ 0.003 for uniform inputs at width 0.125) and a
    short training run only fits the output bias, i.e. a constant map. He init keeps the signal: ``std = √(2/fan_in)``
    for the convs (fan-in ``C_in·k²``), ``√(2/C_in)`` for the stride-2, kernel-2 transposed convs (each output pixel
    sees one tap per input channel) and ``√(1/fan_in)`` for the linear 1×1 output conv. (Starting the output bias at
    mid grey 0.5 was tried and made the first epochs far worse: the initial loss rose tenfold.)
    """
    output = getattr(model, "output", None)
    for mod in model.modules():
        if isinstance(mod, nn.ConvTranspose2d):
            kh, kw = mod.kernel_size
            sh, sw = mod.stride
            fan_in = mod.in_channels * max(1, (kh // sh) * (kw // sw))
            nn.init.normal_(mod.weight, 0.0, (2.0 / fan_in) ** 0.5)
        elif isinstance(mod, nn.Conv2d):
            gain = 1.0 if mod is output else 2.0
            fan_in = mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
            nn.init.normal_(mod.weight, 0.0, (gain / fan_in) ** 0.5)
        else:
            continue
        if mod.bias is not None:
            nn.init.zeros_(mod.bias)


def radionet_any_size(
    inputs: int, initial_downsampling: int, width_mult: float = 1.0, init: str = "kaiming"
) -> nn.Module:
    """The original factory's contract: only ``initial_downsampling == 8`` (256² rasters → 32² maps) is implemented.

    Raises:
        ValueError: For any other downsampling (2 and 4 select RadioNet64to32/128to32 in the original, not ported).
    """
    if initial_downsampling != 8:
        raise ValueError(
            f"initial_downsampling={initial_downsampling}: only 8 (RadioNet256to32, raster_size/32 for 256² rasters) "
            "is implemented"
        )
    return RadioNet256to32(inputs=inputs, width_mult=width_mult, init=init)
