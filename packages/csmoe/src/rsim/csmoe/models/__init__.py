"""nn.Modules of CSMAE / CSMoE and converters for the published CSMAE checkpoints."""

from rsim.csmoe.models.backbone import CSMAE_BAND_ORDER, VARIANTS, VIT_SIZES, CrossSensorViT, EncoderOutput
from rsim.csmoe.models.convert import (
    check_against_manifest,
    load_checkpoint_file,
    load_csmae_weights,
    split_csmae_checkpoint,
)
from rsim.csmoe.models.csmae import CrossSensorMAE, build_backbone
from rsim.csmoe.models.decoder import ReconstructionDecoder
from rsim.csmoe.models.profile import ModelCost, count_flops, model_cost
from rsim.csmoe.models.soft_moe import SoftMoE

__all__ = [
    "CSMAE_BAND_ORDER",
    "VARIANTS",
    "VIT_SIZES",
    "CrossSensorMAE",
    "CrossSensorViT",
    "EncoderOutput",
    "ModelCost",
    "ReconstructionDecoder",
    "SoftMoE",
    "build_backbone",
    "check_against_manifest",
    "count_flops",
    "load_checkpoint_file",
    "load_csmae_weights",
    "model_cost",
    "split_csmae_checkpoint",
]
