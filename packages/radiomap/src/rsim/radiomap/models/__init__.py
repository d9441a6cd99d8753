from rsim.radiomap.models.convert import UNUSED_KEYS, convert_checkpoint, convert_state_dict, load_weights
from rsim.radiomap.models.radionet import (
    INITS,
    RadioNet256to32,
    SDUBlock,
    init_weights,
    radionet_any_size,
    scaled_width,
)

__all__ = [
    "INITS",
    "UNUSED_KEYS",
    "RadioNet256to32",
    "SDUBlock",
    "convert_checkpoint",
    "convert_state_dict",
    "init_weights",
    "load_weights",
    "radionet_any_size",
    "scaled_width",
]
