"""LightningModules shared by the paper packages."""

from rsim.core.tasks.classification import MultiLabelClassificationTask, warmup_cosine_schedule

__all__ = ["MultiLabelClassificationTask", "warmup_cosine_schedule"]
