"""nn.Modules: HyVIC and the baselines."""

from rsim.hyvic.models.baselines import Bmshj2018HyperpriorC, HyCASSLike, Mbt2018MeanC, build_baseline
from rsim.hyvic.models.hyvic import HyVIC, HyVICConfig, rate_bits, rate_bpppc

__all__ = [
    "Bmshj2018HyperpriorC",
    "HyCASSLike",
    "HyVIC",
    "HyVICConfig",
    "Mbt2018MeanC",
    "build_baseline",
    "rate_bits",
    "rate_bpppc",
]
