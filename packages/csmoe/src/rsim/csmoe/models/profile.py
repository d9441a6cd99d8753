"""Parameter and FLOP counts of the cross-sensor encoders (torch's own ``FlopCounterMode``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from rsim.csmoe.models.backbone import CrossSensorViT
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["ModelCost", "count_flops", "model_cost"]


@dataclass
class ModelCost:
    """Cost summary of an encoder.

    Attributes:
        total_params: All parameters (trainable or not, including the fixed positional table).
        active_params_per_token: Parameters that act on one token: everything except, in each Soft-MoE layer,
            the ``n - 1`` experts that do not process that token's slot (a token's slot is processed by one
            expert; routing parameters count as active).
        flops_per_image: Forward FLOPs (multiply-add = 2 FLOPs) of one S1+S2 pair, unmasked, as counted by
            ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions, attention).
        moe_layers: Number of Soft-MoE layers.
    """

    total_params: int
    active_params_per_token: int
    flops_per_image: int
    moe_layers: int

    def as_dict(self) -> dict[str, int]:
        """Plain dict (for JSON/logging)."""
        return asdict(self)


def count_flops(model: CrossSensorViT, batch_size: int = 1) -> int:
    """Forward FLOPs per image of an unmasked S1+S2 pass (on the meta device when the model is)."""
    device = next(model.parameters()).device
    x = torch.zeros(batch_size, 12, model.img_size, model.img_size, device=device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return int(counter.get_total_flops()) // batch_size


def model_cost(model: CrossSensorViT) -> ModelCost:
    """Parameters (total / active per token) and FLOPs per image."""
    total = sum(p.numel() for p in model.parameters())
    inactive = sum((m.num_experts - 1) * m.expert_parameter_count() for m in model.moe_modules().values())
    return ModelCost(total, total - inactive, count_flops(model), len(model.moe_layer_names))
