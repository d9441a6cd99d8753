"""rsim-hyvic: HyVIC spatio-spectral variational hyperspectral image compression with real bitstreams."""

from rsim.hyvic.checkpoint import load_model, save_model
from rsim.hyvic.codec import compress_file, decode_to_array, decompress_file, read_header
from rsim.hyvic.data.datamodule import HyperspectralDataModule
from rsim.hyvic.models.hyvic import HyVIC, HyVICConfig
from rsim.hyvic.tasks import HyVICTask

__all__ = [
    "HyVIC",
    "HyVICConfig",
    "HyVICTask",
    "HyperspectralDataModule",
    "compress_file",
    "decode_to_array",
    "decompress_file",
    "load_model",
    "read_header",
    "save_model",
]
