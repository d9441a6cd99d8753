"""RS-InternVL-style model (nn.Modules only)."""

from rsim.bigearthnet_txt.models.rs_internvl import RSInternVL, load_encoder

__all__ = ["RSInternVL", "load_encoder"]
