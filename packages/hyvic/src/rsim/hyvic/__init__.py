"""HyVIC."""
