"""NAR: noise-adaptive regularization for multi-label remote sensing image classification under label noise."""

from rsim.nar.noise import NoisyLabels, inject_noise, load_noisy_labels
from rsim.nar.nrl import NRLConfig, NRLResult, correction_stats, nrl_update
from rsim.nar.tasks import METHODS, NoisyLabelTask

__all__ = [
    "METHODS",
    "NRLConfig",
    "NRLResult",
    "NoisyLabelTask",
    "NoisyLabels",
    "correction_stats",
    "inject_noise",
    "load_noisy_labels",
    "nrl_update",
]
