"""rsim-radiomap: indoor radio-map prediction from noisy environment information and sparse observations (SNDA)."""

from rsim.radiomap.data import RadioMapDataModule, RadioMapDataset, RadioMapLayout, input_channels
from rsim.radiomap.generator import GeneratorConfig, generate_dataset
from rsim.radiomap.models import RadioNet256to32, convert_checkpoint, load_weights
from rsim.radiomap.tasks import RadioMapTask, masked_mse

__all__ = [
    "GeneratorConfig",
    "RadioMapDataModule",
    "RadioMapDataset",
    "RadioMapLayout",
    "RadioMapTask",
    "RadioNet256to32",
    "convert_checkpoint",
    "generate_dataset",
    "input_channels",
    "load_weights",
    "masked_mse",
]
