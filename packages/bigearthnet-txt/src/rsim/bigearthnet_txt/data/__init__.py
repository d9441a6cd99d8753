"""BigEarthNet.txt data module."""

from rsim.bigearthnet_txt.data.datamodule import AnnotationDataset, BigEarthNetTxtDataModule, collate

__all__ = ["AnnotationDataset", "BigEarthNetTxtDataModule", "collate"]
