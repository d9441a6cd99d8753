"""Data: noise injection, BigEarthNet through rsim-core, UCMerced/AID/DeepGlobe releases, a generated dataset."""

from rsim.nar.data.bigearthnet import NoisyBigEarthNetDataModule
from rsim.nar.data.images import ImageTable, MultiLabelImageDataModule, MultiLabelImageDataset
from rsim.nar.data.noisy import NoiseInjection
from rsim.nar.data.release import (
    AIDMultiLabelDataModule,
    DeepGlobeMultiLabelDataModule,
    UCMercedMultiLabelDataModule,
    write_deepglobe_labels,
)
from rsim.nar.data.synthetic import SyntheticMultiLabelDataModule, generate_multilabel_images

__all__ = [
    "AIDMultiLabelDataModule",
    "DeepGlobeMultiLabelDataModule",
    "ImageTable",
    "MultiLabelImageDataModule",
    "MultiLabelImageDataset",
    "NoiseInjection",
    "NoisyBigEarthNetDataModule",
    "SyntheticMultiLabelDataModule",
    "UCMercedMultiLabelDataModule",
    "generate_multilabel_images",
    "write_deepglobe_labels",
]
