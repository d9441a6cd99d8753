"""Soft mixture-of-experts layer (Puigcerver et al., "From Sparse to Soft Mixtures of Experts", ICLR 2024).

Written from the paper's equations: every slot is a convex combination of all input tokens (dispatch weights,
softmax over tokens), every expert MLP processes its ``p`` slots, and every output token is a convex
combination of all slot outputs (combine weights, softmax over all ``n·p`` slots). No token is dropped and no
auxiliary load-balancing loss is needed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SoftMoE"]


class SoftMoE(nn.Module):
    """Drop-in replacement for a ViT block's MLP: ``[B, M, D] -> [B, M, D]``.

    Args:
        dim: Token width ``d``.
        num_experts: Number of experts ``n``.
        slots_per_expert: Slots per expert ``p``.
        hidden_dim: Hidden width of each expert MLP (default ``4·d``).
        normalize: L2-normalise tokens and slot parameters over ``d`` and multiply the logits by a
            learnable scale (the paper's normalisation for large ``d``).
        bias: Use biases in the expert MLPs.

    Attributes:
        last_expert_usage: After a forward, the combine-weight mass per expert averaged over batch and tokens
            (``[n]``, sums to 1, detached), so that per-sensor specialisation can be logged.
        last_slot_usage: Same per slot (``[n·p]``).
    """

    def __init__(
        self,
        dim: int,
        num_experts: int,
        slots_per_expert: int,
        hidden_dim: int | None = None,
        normalize: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if num_experts < 1 or slots_per_expert < 1:
            raise ValueError(
                f"SoftMoE needs num_experts >= 1 and slots_per_expert >= 1, got {num_experts}, {slots_per_expert}"
            )
        hidden = hidden_dim or 4 * dim
        self.dim, self.num_experts, self.slots_per_expert, self.hidden_dim = (
            dim,
            num_experts,
            slots_per_expert,
            hidden,
        )
        self.normalize = normalize
        self.phi = nn.Parameter(torch.randn(dim, num_experts, slots_per_expert) / math.sqrt(dim))
        self.scale = nn.Parameter(torch.ones(())) if normalize else None
        self.fc1_weight = nn.Parameter(torch.empty(num_experts, dim, hidden))
        self.fc2_weight = nn.Parameter(torch.empty(num_experts, hidden, dim))
        self.fc1_bias = nn.Parameter(torch.zeros(num_experts, hidden)) if bias else None
        self.fc2_bias = nn.Parameter(torch.zeros(num_experts, dim)) if bias else None
        for w in (self.fc1_weight, self.fc2_weight):
            for e in range(num_experts):
                nn.init.xavier_uniform_(w.data[e])
        self.last_expert_usage: Tensor | None = None
        self.last_slot_usage: Tensor | None = None

    @property
    def num_slots(self) -> int:
        """Total slots ``n·p``."""
        return self.num_experts * self.slots_per_expert

    def expert_parameter_count(self) -> int:
        """Parameters of one expert MLP."""
        n = self.dim * self.hidden_dim * 2
        if self.fc1_bias is not None:
            n += self.hidden_dim + self.dim
        return n

    def load_dense_mlp(self, fc1_weight: Tensor, fc1_bias: Tensor, fc2_weight: Tensor, fc2_bias: Tensor) -> None:
        """Initialise every expert from a dense MLP (``nn.Linear`` layout), i.e. sparse upcycling.

        Args:
            fc1_weight: ``[hidden, d]``.
            fc1_bias: ``[hidden]``.
            fc2_weight: ``[d, hidden]``.
            fc2_bias: ``[d]``.
        """
        expected = {
            "fc1.weight": (self.hidden_dim, self.dim),
            "fc1.bias": (self.hidden_dim,),
            "fc2.weight": (self.dim, self.hidden_dim),
            "fc2.bias": (self.dim,),
        }
        for (name, shape), t in zip(expected.items(), (fc1_weight, fc1_bias, fc2_weight, fc2_bias), strict=True):
            if tuple(t.shape) != shape:
                raise ValueError(f"dense MLP tensor {name}: expected shape {shape}, got {tuple(t.shape)}")
        with torch.no_grad():
            self.fc1_weight.copy_(fc1_weight.t().unsqueeze(0).expand_as(self.fc1_weight))
            self.fc2_weight.copy_(fc2_weight.t().unsqueeze(0).expand_as(self.fc2_weight))
            if self.fc1_bias is not None and self.fc2_bias is not None:
                self.fc1_bias.copy_(fc1_bias.unsqueeze(0).expand_as(self.fc1_bias))
                self.fc2_bias.copy_(fc2_bias.unsqueeze(0).expand_as(self.fc2_bias))

    def routing_logits(self, x: Tensor) -> Tensor:
        """Token-slot logits ``[B, M, n, p]``."""
        phi: Tensor = self.phi
        if self.normalize:
            x = F.normalize(x, dim=-1)
            phi = F.normalize(phi, dim=0)
        logits = torch.einsum("bmd,dnp->bmnp", x, phi)
        if self.scale is not None:
            logits = logits * self.scale
        return logits

    def forward(self, x: Tensor) -> Tensor:
        """Route ``x`` ``[B, M, D]`` through the experts; returns ``[B, M, D]``."""
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"SoftMoE expects tokens [B, M, {self.dim}], got {tuple(x.shape)}")
        b, m, _ = x.shape
        logits = self.routing_logits(x)
        dispatch = logits.softmax(dim=1)  # over tokens
        combine = logits.reshape(b, m, -1).softmax(dim=-1).reshape_as(logits)  # over all slots
        slots = torch.einsum("bmnp,bmd->bnpd", dispatch, x)
        h = torch.einsum("bnpd,ndh->bnph", slots, self.fc1_weight)
        if self.fc1_bias is not None:
            h = h + self.fc1_bias[None, :, None, :]
        h = F.gelu(h)
        out = torch.einsum("bnph,nhd->bnpd", h, self.fc2_weight)
        if self.fc2_bias is not None:
            out = out + self.fc2_bias[None, :, None, :]
        y = torch.einsum("bmnp,bnpd->bmd", combine, out)
        with torch.no_grad():
            per_slot = combine.detach().float().mean(dim=(0, 1))  # [n, p]
            self.last_slot_usage = per_slot.reshape(-1)
            self.last_expert_usage = per_slot.sum(dim=-1)
        return y
