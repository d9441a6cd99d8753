"""rsim-seabednet: Seabed-Net joint bathymetry and seabed classification (Agrafiotis, Demir et al. 2026)."""

from rsim.seabednet.data.datamodule import MagicBathyNetDataModule
from rsim.seabednet.data.magicbathynet import SITES, MagicBathyNetReader, decode_palette
from rsim.seabednet.losses import TaskWeighting, masked_ce, masked_rmse, valid_depth_mask
from rsim.seabednet.models.convert import convert_checkpoint, load_converted
from rsim.seabednet.models.seabednet import SeabedNet
from rsim.seabednet.models.unet import SingleTaskUNet, UNetBathy
from rsim.seabednet.tasks import SeabedNetTask

__all__ = [
    "SITES",
    "MagicBathyNetDataModule",
    "MagicBathyNetReader",
    "SeabedNet",
    "SeabedNetTask",
    "SingleTaskUNet",
    "TaskWeighting",
    "UNetBathy",
    "convert_checkpoint",
    "decode_palette",
    "load_converted",
    "masked_ce",
    "masked_rmse",
    "valid_depth_mask",
]
