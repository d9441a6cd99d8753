"""Seabed-Net: dual-branch U-Net with attention feature fusion and windowed-transformer fusion.

Pure PyTorch re-implementation written from the description in the package dossier (the original code is
CC BY-NC-SA and was not copied). Module and parameter names follow the original state-dict layout so that the
published checkpoints load without renaming.

Two behaviours are offered:

* ``reference_compatible=True`` reproduces the original computation exactly: every fusion transformer pads its
  token grid with zero vectors to a 32x32 window and runs softmax over all 1024 keys without a mask, and the
  positional embedding is created as ``(1, 1024, C)`` and replaced by a new zero-filled parameter inside
  ``forward`` whenever the token count differs (so the state depends on the history of input sizes).
* the default mode attends only to real tokens (fused ``scaled_dot_product_attention``), and sizes each
  positional embedding at construction for ``input_size`` and interpolates it (bicubic) to other
  token grids.

Quirks kept in both modes because the published weights were trained with them: the AFF multiplies the
spatially attended features by the SE output (features squared), the transformer MLP residual uses the
normed tensor, the unused ``cross_attn`` weights exist in every block, and the stride-32 patch embedding
drops remainder rows and columns (a warning is issued for such sizes).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MIN_INPUT_SIZE", "SeabedNet", "check_input_size"]

#: Smallest accepted spatial side: the level-4 map (H/8) must hold one 32x32 patch.
MIN_INPUT_SIZE = 256
_PATCH = 32
_LEVELS = 4


def check_input_size(height: int, width: int) -> None:
    """Validate a spatial size for Seabed-Net.

    Args:
        height: Input height in pixels.
        width: Input width in pixels.

    Raises:
        ValueError: If ``floor(side / 8) < 32`` for either side (the deepest patch embedding needs 32 pixels).
    """
    if height // 8 < _PATCH or width // 8 < _PATCH:
        raise ValueError(
            f"Seabed-Net needs inputs of at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} pixels "
            f"(floor(side/8) >= 32 for the level-4 patch embedding), got {height}x{width}"
        )


class DoubleConv(nn.Module):
    """(Conv3x3 -> [BN] -> ReLU) x 2; keys ``double_conv.{0,2}`` without BN, ``{0,1,3,4}`` with BN."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for cin in (in_channels, out_channels):
            layers.append(nn.Conv2d(cin, out_channels, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        self.double_conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the two convolutions."""
        return self.double_conv(x)


class Encoder(nn.Module):
    """Four-level U-Net encoder (channels f, 2f, 4f, 8f), 2x2 max-pool between levels."""

    def __init__(self, in_channels: int, features: int, batch_norm: bool) -> None:
        super().__init__()
        f = features
        self.enc1 = DoubleConv(in_channels, f, batch_norm)
        self.enc2 = DoubleConv(f, 2 * f, batch_norm)
        self.enc3 = DoubleConv(2 * f, 4 * f, batch_norm)
        self.enc4 = DoubleConv(4 * f, 8 * f, batch_norm)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return the four level feature maps, finest first."""
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        e4 = self.enc4(self.pool(e3))
        return [e1, e2, e3, e4]


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation block without biases; returns ``x * weights``."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = channels // reduction
        if hidden < 1:
            raise ValueError(f"SE block needs channels >= {reduction}, got {channels} (use features >= 8)")
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Scale channels by their squeeze-excitation weights."""
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return x * w


class AttentionFeatureFusion(nn.Module):
    """AFF: 7x7 spatial attention, SE channel attention, residual, 1x1 conv halving the channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.spatial_attention = nn.Sequential(nn.Conv2d(2 * channels, 1, 7, padding=3), nn.Sigmoid())
        self.channel_attention = ChannelAttention(2 * channels)
        self.conv = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, bathy: Tensor, seg: Tensor) -> Tensor:
        """Fuse ``cat(bathy, seg)`` into a map with the bathymetry branch's channels."""
        cat = torch.cat([bathy, seg], dim=1)
        g = cat * self.spatial_attention(cat)
        # Original behaviour (checked on the fixture): the SE output g*w is multiplied by g again.
        a = g * self.channel_attention(g)
        return self.conv(a + cat)


class WindowAttention(nn.Module):
    """Multi-head self-attention with a learnable scalar scale and no position bias."""

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention dim {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.scale = nn.Parameter(torch.full((1,), (dim // num_heads) ** -0.5))
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = nn.Dropout(dropout)
        self.proj_drop = nn.Dropout(dropout)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def forward(self, x: Tensor, key_mask: Tensor | None = None, fused: bool = True) -> Tensor:
        """Attend within each window.

        Args:
            x: Tokens ``[windows, N, C]``.
            key_mask: Optional boolean ``[N]`` or ``[windows, N]``; ``True`` marks keys that may be attended.
            fused: Use ``scaled_dot_product_attention`` (otherwise the explicit softmax of the original).

        Returns:
            Tokens ``[windows, N, C]``.
        """
        b, n, c = x.shape
        q, k, v = self._split(x)
        if fused:
            mask = None
            if key_mask is not None:
                mask = key_mask.reshape(-1, 1, 1, n) if key_mask.dim() == 2 else key_mask.reshape(1, 1, 1, n)
            p = self.attn_drop.p if self.training else 0.0
            out = F.scaled_dot_product_attention(q * self.scale, k, v, attn_mask=mask, dropout_p=p, scale=1.0)
        else:
            attn = (q @ k.transpose(-2, -1)) * self.scale
            if key_mask is not None:
                m = key_mask.reshape(-1, 1, 1, n) if key_mask.dim() == 2 else key_mask.reshape(1, 1, 1, n)
                attn = attn.masked_fill(~m, float("-inf"))
            out = self.attn_drop(attn.softmax(dim=-1)) @ v
        out = out.transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(out))


class CrossAttention(nn.Module):
    """Cross-attention weights present in the original state dict; never called in the forward pass."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((1,), (dim // num_heads) ** -0.5))
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)


class TransformerBlock(nn.Module):
    """Windowed transformer block: ``x + attn(norm1(x))`` then ``y + mlp(y)`` with ``y = norm2(x)``."""

    def __init__(self, dim: int, num_heads: int, window_size: int, dropout: float) -> None:
        super().__init__()
        self.window_size = window_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, dropout)
        self.cross_attn = CrossAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.ReLU(inplace=True), nn.Linear(4 * dim, dim), nn.Dropout(dropout)
        )

    def _attend(self, x: Tensor, h: int, w: int, reference_compatible: bool) -> Tensor:
        b, _, c = x.shape
        ws = self.window_size
        if not reference_compatible and h <= ws and w <= ws:
            return self.attn(x, fused=True)  # one window holding only real tokens
        ph, pw = -h % ws, -w % ws
        grid = F.pad(x.reshape(b, h, w, c), (0, 0, 0, pw, 0, ph))
        hp, wp = h + ph, w + pw
        windows = grid.reshape(b, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
        windows = windows.reshape(-1, ws * ws, c)
        if reference_compatible:
            # Original: zero padding tokens are ordinary keys (logit 0, value 0), no mask.
            out = self.attn(windows, fused=False)
        else:
            valid = torch.zeros(hp, wp, dtype=torch.bool, device=x.device)
            valid[:h, :w] = True
            vmask = valid.reshape(hp // ws, ws, wp // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)
            out = self.attn(windows, key_mask=vmask.repeat(b, 1), fused=True)
        out = out.reshape(b, hp // ws, wp // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
        return out[:, :h, :w].reshape(b, h * w, c)

    def forward(self, x: Tensor, h: int, w: int, reference_compatible: bool = False) -> Tensor:
        """Transform tokens ``[B, h*w, C]`` laid out row-major on an ``h x w`` grid."""
        x = x + self._attend(self.norm1(x), h, w, reference_compatible)
        y = self.norm2(x)
        return y + self.mlp(y)


class PatchEmbed(nn.Module):
    """Non-overlapping patch embedding (kernel = stride = patch size)."""

    def __init__(self, dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        """Return ``[B, C, H // patch, W // patch]``."""
        return self.proj(x)


class FusionViT(nn.Module):
    """Patch embedding + positional embedding + one windowed transformer block + LayerNorm."""

    def __init__(
        self,
        dim: int,
        grid: int,
        num_heads: int,
        window_size: int,
        patch_size: int,
        dropout: float,
        reference_compatible: bool,
    ) -> None:
        super().__init__()
        self.reference_compatible = reference_compatible
        self.grid = grid
        if reference_compatible:
            self.pos_embed = nn.Parameter(torch.zeros(1, window_size * window_size, dim))
        else:
            self.pos_embed = nn.Parameter(torch.empty(1, grid * grid, dim))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.patch_embed = PatchEmbed(dim, patch_size)
        self.transformer_blocks = nn.ModuleList([TransformerBlock(dim, num_heads, window_size, dropout)])
        self.norm = nn.LayerNorm(dim)
        self.pos_drop = nn.Dropout(dropout)

    def _pos(self, h: int, w: int, x: Tensor) -> Tensor:
        n = h * w
        if self.reference_compatible:
            if self.pos_embed.shape[1] != n:
                # Original behaviour: a new zero-filled parameter replaces the stored one.
                self.pos_embed = nn.Parameter(
                    torch.zeros(1, n, x.shape[-1], device=x.device, dtype=x.dtype), requires_grad=True
                )
            return self.pos_embed
        pe = self.pos_embed
        g = self.grid
        if h == g and w == g:
            return pe
        grid = pe.reshape(1, g, g, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
        return grid.permute(0, 2, 3, 1).reshape(1, n, -1)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``[B, C, H, W]`` to ``[B, C, H // 32, W // 32]``."""
        t = self.patch_embed(x)
        b, c, h, w = t.shape
        tokens = t.flatten(2).transpose(1, 2)
        tokens = self.pos_drop(tokens + self._pos(h, w, tokens))
        for blk in self.transformer_blocks:
            tokens = blk(tokens, h, w, self.reference_compatible)
        tokens = self.norm(tokens)
        return tokens.transpose(1, 2).reshape(b, c, h, w)

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        key = prefix + "pos_embed"
        incoming = state_dict.get(key)
        if incoming is not None and tuple(incoming.shape) != tuple(self.pos_embed.shape):
            if incoming.dim() != 3 or incoming.shape[0] != 1 or incoming.shape[2] != self.pos_embed.shape[2]:
                error_msgs.append(
                    f"{key}: expected shape (1, N, {self.pos_embed.shape[2]}), got {tuple(incoming.shape)}"
                )
                state_dict = {k: v for k, v in state_dict.items() if k != key}
            elif self.reference_compatible:
                # Any token count is valid for the original; adopt the checkpoint's shape.
                self.pos_embed = nn.Parameter(
                    torch.empty_like(incoming, device=self.pos_embed.device, dtype=self.pos_embed.dtype)
                )
            else:
                # Original semantics: values only act when N equals the token count; otherwise they are zeros.
                warnings.warn(
                    f"{key}: checkpoint has {incoming.shape[1]} tokens, model grid has {self.grid**2}; "
                    "the original would use zeros at this size, so zeros are loaded",
                    stacklevel=2,
                )
                state_dict = dict(state_dict)
                state_dict[key] = torch.zeros_like(self.pos_embed)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )


class ViTFusion(nn.Module):
    """1x1 reduction, transformer on 32x32 patches, 1x1 conv, nearest upsampling to the level size."""

    def __init__(
        self,
        channels: int,
        grid: int,
        num_heads: int,
        window_size: int,
        patch_size: int,
        dropout: float,
        reference_compatible: bool,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2 * channels, channels, 1)
        self.vit = FusionViT(channels, grid, num_heads, window_size, patch_size, dropout, reference_compatible)
        self.final_conv = nn.Conv2d(channels, channels, 1)

    def forward(self, bathy: Tensor, seg: Tensor) -> Tensor:
        """Fuse ``cat(bathy, seg)`` into a map with the segmentation branch's channels."""
        x = self.conv(torch.cat([bathy, seg], dim=1))
        x = self.final_conv(self.vit(x))
        return F.interpolate(x, size=seg.shape[-2:], mode="nearest")


class Up(nn.Module):
    """Transposed-conv upsampling, pad to the skip size, ``cat([skip, up])``, DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2)
        self.conv = DoubleConv(in_channels, out_channels, batch_norm)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        """Upsample ``x`` and merge it with ``skip``."""
        x = self.up(x)
        dy = skip.shape[-2] - x.shape[-2]
        dx = skip.shape[-1] - x.shape[-1]
        x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([skip, x], dim=1))


class Decoder(nn.Module):
    """Three Up stages 8f -> 4f -> 2f -> f and a 1x1 output convolution."""

    def __init__(self, features: int, out_channels: int, batch_norm: bool) -> None:
        super().__init__()
        f = features
        self.decoder = nn.ModuleList(
            [Up(8 * f, 4 * f, batch_norm), Up(4 * f, 2 * f, batch_norm), Up(2 * f, f, batch_norm)]
        )
        self.out_conv = nn.Conv2d(f, out_channels, 1)

    def forward(self, feats: list[Tensor]) -> Tensor:
        """Decode the four level maps (finest first)."""
        x = feats[3]
        for up, skip in zip(self.decoder, (feats[2], feats[1], feats[0]), strict=True):
            x = up(x, skip)
        return self.out_conv(x)


class SeabedNet(nn.Module):
    """Seabed-Net joint bathymetry regression and seabed segmentation network.

    Args:
        in_channels: Image bands (3 for MagicBathyNet).
        features: Width f; encoder levels have f, 2f, 4f, 8f channels (paper: 64). Must be >= 8.
        bathymetry_out_channels: Depth output channels (1).
        segmentation_out_channels: Class logits K, including the "undefined" class.
        batch_norm: Accepted for checkpoint-compatible construction and ignored, as in the original: the
            bathymetry branch never has BatchNorm, the segmentation branch always has it.
        reference_compatible: Reproduce the original computation exactly (padded 1024-key window attention,
            ``(1, 1024, C)`` positional embeddings replaced by zeros in ``forward`` on a token-count change).
        input_size: Training side length used to size the positional embeddings in the default mode.
        num_heads: Attention heads in every fusion transformer.
        window_size: Attention window side in tokens.
        patch_size: Patch-embedding stride of the fusion transformers.
        dropout: Dropout probability in the fusion transformers (inactive in eval).
    """

    def __init__(
        self,
        in_channels: int = 3,
        features: int = 64,
        bathymetry_out_channels: int = 1,
        segmentation_out_channels: int = 5,
        batch_norm: bool = True,
        *,
        reference_compatible: bool = False,
        input_size: int = 256,
        num_heads: int = 4,
        window_size: int = 32,
        patch_size: int = _PATCH,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if features < 8:
            raise ValueError(f"features must be >= 8 (SE reduction 16 on 2f channels), got {features}")
        check_input_size(input_size, input_size)
        del batch_norm  # see docstring: the original ignores it
        self.in_channels = in_channels
        self.features = features
        self.reference_compatible = reference_compatible
        self.input_size = input_size
        self.patch_size = patch_size
        f = features
        self.bathy_encoder = Encoder(in_channels, f, batch_norm=False)
        self.seg_encoder = Encoder(in_channels, f, batch_norm=True)
        chans = [f * 2**i for i in range(_LEVELS)]
        self.fusion1b, self.fusion2b, self.fusion3b, self.fusion4b = (AttentionFeatureFusion(c) for c in chans)
        grids = [max(1, (input_size >> i) // patch_size) for i in range(_LEVELS)]
        self.fusion1, self.fusion2, self.fusion3, self.fusion4 = (
            ViTFusion(c, g, num_heads, window_size, patch_size, dropout, reference_compatible)
            for c, g in zip(chans, grids, strict=True)
        )
        self.bathy_decoder = Decoder(f, bathymetry_out_channels, batch_norm=False)
        self.seg_decoder = Decoder(f, segmentation_out_channels, batch_norm=True)
        self._warned_sizes: set[tuple[int, int]] = set()

    def _check(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input [B, {self.in_channels}, H, W], got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        check_input_size(h, w)
        if (h, w) in self._warned_sizes:
            return
        for i in range(_LEVELS):
            if (h >> i) % self.patch_size or (w >> i) % self.patch_size:
                warnings.warn(
                    f"input {h}x{w}: level {i + 1} ({h >> i}x{w >> i}) is not a multiple of "
                    f"{self.patch_size}; the fusion transformer ignores the remainder rows/columns "
                    "(use sides that are multiples of 256)",
                    stacklevel=3,
                )
                break
        self._warned_sizes.add((h, w))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Predict depth and class logits.

        Args:
            x: Image ``[B, in_channels, H, W]`` with ``H, W >= 256``.

        Returns:
            ``(bathy [B, bathymetry_out_channels, H, W], seg_logits [B, segmentation_out_channels, H, W])``.
        """
        self._check(x)
        b_feats = self.bathy_encoder(x)
        s_feats = self.seg_encoder(x)
        affs = (self.fusion1b, self.fusion2b, self.fusion3b, self.fusion4b)
        vits = (self.fusion1, self.fusion2, self.fusion3, self.fusion4)
        b_out, s_out = [], []
        for bf, sf, aff, vit in zip(b_feats, s_feats, affs, vits, strict=True):
            b_out.append(bf + aff(bf, sf))
            s_out.append(sf + vit(bf, sf))
        return self.bathy_decoder(b_out), self.seg_decoder(s_out)

    @staticmethod
    def num_tokens(size: int, level: int, patch_size: int = _PATCH) -> int:
        """Tokens per side of the fusion transformer at ``level`` (1-based) for an input side ``size``."""
        return (size >> (level - 1)) // patch_size

    def extra_repr(self) -> str:
        """Show the mode in ``repr``."""
        return f"features={self.features}, reference_compatible={self.reference_compatible}"
