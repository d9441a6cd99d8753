"""nn.Modules and losses of NAR (no Lightning, no I/O)."""

from rsim.nar.models.losses import asl_loss, elr_regularizer, weighted_bce, weighted_mean

__all__ = ["asl_loss", "elr_regularizer", "weighted_bce", "weighted_mean"]
