"""rsim-slimming: post-hoc width slimming of RS foundation-model ViTs, FLOP counting, sweeps and analyses."""

from rsim.slimming.analysis import analyse_features, explained_variance, feature_correlation, participation_ratio
from rsim.slimming.cnn import slim_cnn_block
from rsim.slimming.flops import measure_flops, vit_flops
from rsim.slimming.models import load_encoder
from rsim.slimming.residual import slim_residual
from rsim.slimming.slim import PAPER_WIDTHS, SlicedAttention, keep_count, slim
from rsim.slimming.sweep import run_sweep
from rsim.slimming.tasks import SlimmableTask, forward_at_width, sandwich_widths

__all__ = [
    "PAPER_WIDTHS",
    "SlicedAttention",
    "SlimmableTask",
    "analyse_features",
    "explained_variance",
    "feature_correlation",
    "forward_at_width",
    "keep_count",
    "load_encoder",
    "measure_flops",
    "participation_ratio",
    "run_sweep",
    "sandwich_widths",
    "slim",
    "slim_cnn_block",
    "slim_residual",
    "vit_flops",
]
