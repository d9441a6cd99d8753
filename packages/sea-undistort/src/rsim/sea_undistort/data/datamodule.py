"""Lightning data module of Sea-Undistort: workers read raw uint8 arrays, transforms run on the batch's device."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from rsim.sea_undistort.data.augment import Jitter, PairTransform, TransformMode
from rsim.sea_undistort.data.dataset import PairMode, SeaUndistortDataset, glint_mask_batch
from torch.utils.data import DataLoader


class SeaUndistortDataModule(LightningDataModule):
    """Train/val/test loaders of the released layout with the released split and device-side transforms.

    Args:
        root: Dataset folder.
        pair_mode: Input/target pairing (default ``normal_no_waves``, used by every published model [code]).
        shader_folders: Optional sub-folders with their own lists.
        blacklist: ``blacklist.txt`` (281 IDs, default [assumption]) or ``blacklist-short.txt`` (198); ``None``.
        test_list: Fixed test list inside the folder; ``None`` for none.
        seed: Split seed (42 [code]).
        fractions: Train/val/test fractions (0.8/0.1/0.1 [code]).
        add_mask: Compute the soft glint mask (needed for early fusion).
        lower_threshold: Mask lower clip (30 [code]).
        upper_threshold: Mask upper clip (60 [code]).
        binary_mask: Older binary mask ``d > 45`` [code].
        size: Crop side (256 [code]).
        transform_mode: ``resizecrop`` (RandomResizedCrop train, CenterCrop eval), ``crop`` or ``resize``.
        flips: Random h/v flips in training [code].
        color_jitter: ``none`` / ``light`` / ``strong`` in training.
        negative_values: Map images and mask to [-1, 1] (False: [0, 1]).
        batch_size: Batch size.
        num_workers: DataLoader workers (read raw arrays only).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        pair_mode: PairMode = "normal_no_waves",
        shader_folders: Sequence[str] | None = None,
        blacklist: str | None = "blacklist.txt",
        test_list: str | None = "test_list.txt",
        seed: int = 42,
        fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
        add_mask: bool = True,
        lower_threshold: float = 30,
        upper_threshold: float = 60,
        binary_mask: bool = False,
        size: int = 256,
        transform_mode: TransformMode = "resizecrop",
        flips: bool = True,
        color_jitter: Jitter = "none",
        negative_values: bool = False,
        batch_size: int = 8,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.root = root
        self.batch_size, self.num_workers = batch_size, num_workers
        self.train_transform = PairTransform(
            size, transform_mode, train=True, flips=flips, color_jitter=color_jitter, negative_values=negative_values
        )
        self.eval_transform = PairTransform(size, transform_mode, train=False, negative_values=negative_values)
        self.datasets: dict[str, SeaUndistortDataset] = {}

    def dataset(self, split: str) -> SeaUndistortDataset:
        """The (cached) dataset of ``split``."""
        if split not in self.datasets:
            h: Any = self.hparams
            self.datasets[split] = SeaUndistortDataset(
                self.root, split, pair_mode=h.pair_mode, shader_folders=h.shader_folders, blacklist=h.blacklist,
                test_list=h.test_list, seed=h.seed, fractions=tuple(h.fractions), add_mask=h.add_mask,
            )  # fmt: skip
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:  # noqa: D102
        splits = {"fit": ["train", "val"], "validate": ["val"], "test": ["test"], "predict": ["test"]}
        for split in splits.get(stage or "", ["train", "val", "test"]):
            ds = self.dataset(split)
            if split == "train" and len(ds) == 0:
                raise ValueError(f"{self.root}: the train split is empty (check blacklist/test list)")

    def _loader(self, split: str, shuffle: bool) -> DataLoader[Any]:
        ds = self.dataset(split)
        return DataLoader(
            ds, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0, drop_last=shuffle and len(ds) >= self.batch_size,
        )  # fmt: skip

    def train_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("test", False)

    def predict_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("test", False)

    def transform_batch(self, batch: dict[str, Any], *, train: bool) -> dict[str, Any]:
        """Glint mask from the raw renders, uint8 → float [0, 1], then the joint transforms of the split."""
        batch = dict(batch)
        no_sunglint, distorted = batch.pop("no_sunglint", None), batch.pop("distorted", None)
        if no_sunglint is not None:
            h: Any = self.hparams
            mask = glint_mask_batch(
                batch["lq"] if distorted is None else distorted,
                no_sunglint,
                h.lower_threshold,
                h.upper_threshold,
                binary=h.binary_mask,
            )
        else:
            mask = torch.zeros_like(batch["lq"][:, :1], dtype=torch.float32)
        lq = batch["lq"].float() / 255.0
        gt = batch["gt"].float() / 255.0
        transform = self.train_transform if train else self.eval_transform
        transform.to(lq.device)
        lq, gt, mask = transform(lq, gt, mask)
        return {**batch, "lq": lq, "gt": gt, "mask": mask}

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:  # noqa: D102
        trainer = self.trainer
        train = bool(trainer is not None and trainer.training)
        return self.transform_batch(batch, train=train)
