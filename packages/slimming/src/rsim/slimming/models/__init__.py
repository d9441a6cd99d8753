from rsim.slimming.models.foundation import (
    ENCODERS,
    PrithviEncoder,
    build_prithvi,
    build_scalemae,
    build_ssl4eo_vit_s16,
    encode,
    load_encoder,
    sincos_pos_embed,
)

__all__ = [
    "ENCODERS",
    "PrithviEncoder",
    "build_prithvi",
    "build_scalemae",
    "build_ssl4eo_vit_s16",
    "encode",
    "load_encoder",
    "sincos_pos_embed",
]
