"""Backbones (nn.Modules only)."""

from __future__ import annotations

from typing import Any

import timm
from torch import nn


def build_backbone(name: str = "resnet18", in_channels: int = 10, **kwargs: Any) -> tuple[nn.Module, int]:
    """A timm backbone without classifier (``num_classes=0``, nothing downloaded) and its feature width.

    The paper's backbone is a ResNet-18 with 10 input bands trained from scratch (512-d pooled features); timm's
    ``resnet18`` has the same architecture as torchvision's. Its state dict keys match
    ``rsim.core.tasks.MultiLabelClassificationTask.model`` (minus the classifier), so exported weights load there.
    """
    model = timm.create_model(name, pretrained=False, in_chans=in_channels, num_classes=0, **kwargs)
    return model, int(model.num_features)  # type: ignore[arg-type]


__all__ = ["build_backbone"]
