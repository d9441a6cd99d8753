from rsim.slimming.models.croma import CROMA, CromaCrossAttention, build_croma, convert_croma_checkpoint
from rsim.slimming.models.dofa import S2_WAVELENGTHS, DOFAEncoder, build_dofa, convert_dofa_checkpoint
from rsim.slimming.models.foundation import (
    CONVERTERS,
    ENCODERS,
    PrithviEncoder,
    build_prithvi,
    build_scalemae,
    build_ssl4eo_resnet50,
    build_ssl4eo_vit_s16,
    encode,
    input_channels,
    load_encoder,
    sincos_pos_embed,
)

__all__ = [
    "CONVERTERS",
    "CROMA",
    "ENCODERS",
    "S2_WAVELENGTHS",
    "CromaCrossAttention",
    "DOFAEncoder",
    "PrithviEncoder",
    "build_croma",
    "build_dofa",
    "build_prithvi",
    "build_scalemae",
    "build_ssl4eo_resnet50",
    "build_ssl4eo_vit_s16",
    "convert_croma_checkpoint",
    "convert_dofa_checkpoint",
    "encode",
    "input_channels",
    "load_encoder",
    "sincos_pos_embed",
]
