"""Baselines in the same harness: HyCASS-like AE, CompressAI hyperprior models adapted to C bands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from compressai.layers import GDN
from compressai.models import MeanScaleHyperprior, ScaleHyperprior
from compressai.models.utils import conv, deconv
from rsim.hyvic.entropy import CodecEntropyBottleneck, CodecGaussianConditional
from rsim.hyvic.models.hyvic import HyVICConfig, SpatioSpectralDecoder, SpatioSpectralEncoder
from torch import Tensor, nn


class HyCASSLike(nn.Module):
    """Deterministic adjustable spatio-spectral autoencoder (HyCASS-style, not entropy coded).

    The latent is ``L = latent_channels`` channels squashed by a sigmoid; its rate is counted the way
    HyCASS/HyCoT count it, as float32 values: ``CR = (C / L) * 4**S`` and ``bpppc = 32 / CR``.
    """

    def __init__(self, config: HyVICConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.config = config or HyVICConfig(**kwargs)
        self.encoder = nn.Sequential(SpatioSpectralEncoder(self.config), nn.Sigmoid())
        self.decoder = SpatioSpectralDecoder(self.config)

    @property
    def compression_ratio(self) -> float:
        """CR under the float32-latent convention."""
        c = self.config
        return c.in_channels / c.latent_channels * 4**c.num_stages

    @property
    def bpppc(self) -> float:
        """Rate in bits per pixel per channel, 32 / CR."""
        return 32.0 / self.compression_ratio

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Return ``{"x_hat", "latent"}``."""
        latent = self.encoder(x)
        return {"x_hat": self.decoder(latent), "latent": latent}


def _adapt_io(model: ScaleHyperprior, in_channels: int, n: int) -> None:
    model.g_a[0] = conv(in_channels, n)
    model.g_s[-1] = deconv(n, in_channels)
    model.g_s.append(nn.Sigmoid())  # data in [0, 1] like HyVIC's decoder
    # Same entropy models and index mapping as HyVIC (parameters and likelihoods identical to CompressAI's).
    model.entropy_bottleneck = CodecEntropyBottleneck(model.entropy_bottleneck.channels)
    model.gaussian_conditional = CodecGaussianConditional(None)
    if not isinstance(model.g_a[1], GDN):  # pragma: no cover - guards against a CompressAI layout change
        raise RuntimeError("unexpected CompressAI g_a layout")


class Bmshj2018HyperpriorC(ScaleHyperprior):
    """CompressAI ``bmshj2018-hyperprior`` (scale hyperprior) with C input/output bands (pretrained=False)."""

    divisor = 64

    def __init__(self, in_channels: int, N: int = 128, M: int = 192) -> None:
        super().__init__(N, M)
        self.in_channels = in_channels
        self.hparams = {"in_channels": in_channels, "N": N, "M": M}
        _adapt_io(self, in_channels, N)


class Mbt2018MeanC(MeanScaleHyperprior):
    """CompressAI ``mbt2018-mean`` (mean-scale hyperprior) with C input/output bands (pretrained=False)."""

    divisor = 64

    def __init__(self, in_channels: int, N: int = 128, M: int = 192) -> None:
        super().__init__(N, M)
        self.in_channels = in_channels
        self.hparams = {"in_channels": in_channels, "N": N, "M": M}
        _adapt_io(self, in_channels, N)


BASELINES: dict[str, type[ScaleHyperprior]] = {
    "bmshj2018-hyperprior": Bmshj2018HyperpriorC,
    "mbt2018-mean": Mbt2018MeanC,
}


def build_baseline(name: str, in_channels: int, n: int = 128, m: int = 192) -> ScaleHyperprior:
    """Build an adapted CompressAI baseline by zoo name."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {sorted(BASELINES)}")
    return BASELINES[name](in_channels, N=n, M=m)


def hycass_compression_ratio(in_channels: int, latent_channels: int, num_stages: int) -> float:
    """CR = (C / L) * 4**S (float32-latent convention)."""
    return in_channels / latent_channels * 4**num_stages


def hycass_latent_channels(in_channels: int, cr_target: float, num_stages: int) -> int:
    """L = int(C / CR_target * 4**S), the HyCASS CR adapter width."""
    return max(1, int(in_channels / cr_target * 4**num_stages))


__all__: Sequence[str] = [
    "BASELINES",
    "Bmshj2018HyperpriorC",
    "HyCASSLike",
    "Mbt2018MeanC",
    "build_baseline",
    "hycass_compression_ratio",
    "hycass_latent_channels",
]
