"""VQ autoencoder (f4) in the latent-diffusion layout, with loading of a local state dict; identity for pixel space.

Parameter names follow the latent-diffusion ``VQModel`` (``encoder.down.0.block.0.norm1.weight``,
``quantize.embedding.weight``, ``quant_conv``...), so ResShift's released ``autoencoder_vq_f4.pth`` loads by name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rsim.core.errors import DataFormatError
from rsim.core.weights import read_state_dict
from torch import Tensor, nn


def _gn(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(32 if c % 32 == 0 else 1, c, eps=1e-6)


class _ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _gn(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = _gn(cout), nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class _AttnBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm = _gn(c)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(x)
        b, c, hh, ww = h.shape
        q, k, v = (m(h).flatten(2).transpose(1, 2) for m in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, c, hh, ww)
        return x + self.proj_out(out)


class _Down(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class _Up(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Level(nn.Module):
    """One resolution level: ``block`` (res-blocks), empty ``attn`` and an optional ``downsample``/``upsample``."""

    def __init__(self, blocks: list[nn.Module], resample_name: str | None, resample: nn.Module | None) -> None:
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList()
        self.resample_name = resample_name
        if resample_name is not None and resample is not None:
            self.add_module(resample_name, resample)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.block:
            x = block(x)
        if self.resample_name is not None:
            x = getattr(self, self.resample_name)(x)
        return x


class _Mid(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.block_1, self.attn_1, self.block_2 = _ResnetBlock(c, c), _AttnBlock(c), _ResnetBlock(c, c)

    def forward(self, x: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class _Encoder(nn.Module):
    def __init__(self, in_ch: int, ch: int, ch_mult: Sequence[int], num_res_blocks: int, z_channels: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_ch, ch, 3, padding=1)
        self.down = nn.ModuleList()
        cin = ch
        for i, mult in enumerate(ch_mult):
            blocks: list[nn.Module] = []
            for _ in range(num_res_blocks):
                blocks.append(_ResnetBlock(cin, ch * mult))
                cin = ch * mult
            last = i == len(ch_mult) - 1
            self.down.append(_Level(blocks, None if last else "downsample", None if last else _Down(cin)))
        self.mid = _Mid(cin)
        self.norm_out = _gn(cin)
        self.conv_out = nn.Conv2d(cin, z_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class _Decoder(nn.Module):
    def __init__(self, out_ch: int, ch: int, ch_mult: Sequence[int], num_res_blocks: int, z_channels: int) -> None:
        super().__init__()
        cin = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, cin, 3, padding=1)
        self.mid = _Mid(cin)
        ups: list[nn.Module] = []
        for i in reversed(range(len(ch_mult))):
            blocks: list[nn.Module] = []
            for _ in range(num_res_blocks + 1):
                blocks.append(_ResnetBlock(cin, ch * ch_mult[i]))
                cin = ch * ch_mult[i]
            ups.insert(0, _Level(blocks, "upsample" if i > 0 else None, _Up(cin) if i > 0 else None))
        self.up = nn.ModuleList(ups)
        self.norm_out = _gn(cin)
        self.conv_out = nn.Conv2d(cin, out_ch, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class VectorQuantizer(nn.Module):
    """Nearest-codebook quantiser (``quantize.embedding.weight``: ``(n_embed, embed_dim)``)."""

    def __init__(self, n_embed: int, embed_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / n_embed, 1.0 / n_embed)

    def forward(self, z: Tensor) -> Tensor:  # noqa: D102
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        index = torch.cdist(flat, self.embedding.weight).argmin(dim=1)
        q = self.embedding(index).view(z.shape[0], z.shape[2], z.shape[3], z.shape[1]).permute(0, 3, 1, 2)
        return z + (q - z).detach()


class VQAutoencoder(nn.Module):
    """VQGAN-style autoencoder (f = 2^(len(ch_mult)-1)); images in [-1, 1].

    Defaults are the f4 model of latent diffusion/ResShift: embed_dim 3, n_embed 8192, ch 128, ch_mult (1, 2, 4),
    2 res-blocks, no attention at resolutions [code]. ``encode`` returns the pre-quantisation latent times
    ``scale_factor``; ``decode`` quantises first unless ``quantize_decode=False``.
    """

    def __init__(
        self, embed_dim: int = 3, n_embed: int = 8192, ch: int = 128, ch_mult: Sequence[int] = (1, 2, 4),
        num_res_blocks: int = 2, in_channels: int = 3, z_channels: int = 3, scale_factor: float = 1.0,
        quantize_decode: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        self.encoder = _Encoder(in_channels, ch, ch_mult, num_res_blocks, z_channels)
        self.decoder = _Decoder(in_channels, ch, ch_mult, num_res_blocks, z_channels)
        self.quantize = VectorQuantizer(n_embed, embed_dim)
        self.quant_conv = nn.Conv2d(z_channels, embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, z_channels, 1)
        self.latent_channels = embed_dim
        self.downsample_factor = 2 ** (len(ch_mult) - 1)
        self.scale_factor, self.quantize_decode = scale_factor, quantize_decode

    def encode(self, x: Tensor) -> Tensor:
        """Image (B, 3, H, W) in [-1, 1] → latent (B, embed_dim, H/f, W/f)."""
        return self.quant_conv(self.encoder(x)) * self.scale_factor

    def decode(self, z: Tensor) -> Tensor:
        """Latent → image in about [-1, 1]."""
        z = z / self.scale_factor
        if self.quantize_decode:
            z = self.quantize(z)
        return self.decoder(self.post_quant_conv(z))


class PixelSpace(nn.Module):
    """Identity "autoencoder": diffusion runs on the image itself (used when no VQ weights are available)."""

    latent_channels = 3
    downsample_factor = 1

    def encode(self, x: Tensor) -> Tensor:  # noqa: D102
        return x

    def decode(self, z: Tensor) -> Tensor:  # noqa: D102
        return z


def load_autoencoder(path: str | os.PathLike[str] | None, **config: Any) -> VQAutoencoder | PixelSpace:
    """A frozen :class:`VQAutoencoder` with weights from a local ``.pth``/``.ckpt``/``.safetensors``, else pixel space.

    ``path=None`` or a missing file gives :class:`PixelSpace` (stated by the caller). A ``state_dict`` nested under
    ``state_dict``/``model``/``params_ema`` is unwrapped; loss/discriminator keys are ignored.

    Raises:
        DataFormatError: The file is unreadable or its tensors do not match the configured architecture.
    """
    if path is None or not Path(path).is_file():
        return PixelSpace()
    path = Path(path)
    try:
        state: dict[str, Any] = read_state_dict(path, wrappers=("state_dict", "model", "params_ema"))
    except DataFormatError as exc:
        raise DataFormatError(f"cannot read autoencoder weights {path} ({exc})") from exc
    state = {k: v for k, v in state.items() if not k.startswith("loss.")}
    model = VQAutoencoder(**config)
    if "quantize.embedding.weight" in state and "n_embed" not in config:
        n, d = state["quantize.embedding.weight"].shape
        model = VQAutoencoder(**{**config, "n_embed": n, "embed_dim": d})
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DataFormatError(f"{path}: autoencoder weights do not match the f4 VQ architecture ({exc})") from exc
    model.eval().requires_grad_(False)
    return model
