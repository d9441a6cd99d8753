"""rsim-csmoe: CSMoE (cross-sensor MAE with Soft MoE), its CSMAE base and thematic-climatic sampling."""

from rsim.csmoe.losses import masked_mse, nt_xent, patchify
from rsim.csmoe.models import CrossSensorMAE, CrossSensorViT, SoftMoE, build_backbone, load_csmae_weights
from rsim.csmoe.retrieval import cbir_scores, cross_sensor_retrieval
from rsim.csmoe.sampling import thematic_climatic_sample
from rsim.csmoe.tasks import CSMoEPretrainTask, CSMoEProbeTask, CSMoESegmentationTask

__version__ = "0.1.0"

__all__ = [
    "CSMoEPretrainTask",
    "CSMoEProbeTask",
    "CSMoESegmentationTask",
    "CrossSensorMAE",
    "CrossSensorViT",
    "SoftMoE",
    "build_backbone",
    "cbir_scores",
    "cross_sensor_retrieval",
    "load_csmae_weights",
    "masked_mse",
    "nt_xent",
    "patchify",
    "thematic_climatic_sample",
]
