"""Model loaders shared by the paper packages (local weights only, nothing is downloaded)."""

from rsim.core.models.internvit import (
    INTERNVIT_300M,
    InternVLProjector,
    convert_internvit_state_dict,
    create_internvit,
    create_internvl_projector,
    extract_internvl_projector_state_dict,
    internvl_pixel_shuffle,
    read_checkpoint,
    resize_internvit_pos_embed,
)

__all__ = [
    "INTERNVIT_300M",
    "InternVLProjector",
    "convert_internvit_state_dict",
    "create_internvit",
    "create_internvl_projector",
    "extract_internvl_projector_state_dict",
    "internvl_pixel_shuffle",
    "read_checkpoint",
    "resize_internvit_pos_embed",
]
