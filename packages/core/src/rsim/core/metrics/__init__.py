"""Evaluation metrics as torchmetrics ``Metric`` s computed on the device, plus functional helpers.

Every stateful metric keeps sums (or a confusion matrix, or the concatenated scores for AP) registered with
``add_state`` and a ``"sum"``/``"cat"`` reduction, so results are exact across batches and DDP ranks.
"""

from rsim.core.metrics.classification import multilabel_metrics, multilabel_per_class
from rsim.core.metrics.compression import PSNR, SpectralAngle, bd_psnr, bd_rate, bpppc, psnr, spectral_angle
from rsim.core.metrics.detection import BoxAccuracy, box_iou, paired_box_iou
from rsim.core.metrics.masks import MaskIoU
from rsim.core.metrics.regression import MaskedRegressionMetrics
from rsim.core.metrics.retrieval import RetrievalAtK, retrieval_at_k
from rsim.core.metrics.segmentation import SegmentationMetrics

__all__ = [
    "PSNR",
    "BoxAccuracy",
    "MaskIoU",
    "MaskedRegressionMetrics",
    "RetrievalAtK",
    "SegmentationMetrics",
    "SpectralAngle",
    "bd_psnr",
    "bd_rate",
    "box_iou",
    "bpppc",
    "multilabel_metrics",
    "multilabel_per_class",
    "paired_box_iou",
    "psnr",
    "retrieval_at_k",
    "spectral_angle",
]
