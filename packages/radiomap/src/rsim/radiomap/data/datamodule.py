"""LightningDataModule: workers read raw uint8 rasters; features, observations and flips/rot90 run on the device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from rsim.radiomap.data.dataset import RadioMapDataset
from rsim.radiomap.data.features import augment_joint, build_inputs, sample_observations
from rsim.radiomap.data.layout import RadioMapLayout, split_file_name
from torch.utils.data import DataLoader

__all__ = ["RadioMapDataModule", "input_channels"]


def input_channels(
    encoding: str, n_heights: int = 29, *, fspl_channel: bool = False, obs_mask_channel: bool = False
) -> int:
    """Model input channels: environment + Tx one-hot + Tx distance (+ FSPL) + observations (+ mask)."""
    env = {"none": 0, "binary": 1, "classes": 1, "properties": 3}[encoding] * n_heights
    return env + 2 + int(fspl_channel) + 1 + int(obs_mask_channel)


class RadioMapDataModule(LightningDataModule):
    """Train/val/test loaders over the split JSON, SNDA copies, device-side inputs.

    Args:
        root: Dataset folder (RML_indoor layout).
        encoding: ``binary`` | ``classes`` | ``properties`` | ``none``.
        snda: Train on random perturbed copies (target stays the original map).
        n_copies: Copies per room to draw from (``None``: all found).
        copies_dir: Folder under ``perturbed/`` used for SNDA training.
        perturb_rasters: SNDA/noisy evaluation replaces the rasters.
        perturb_tx: SNDA/noisy evaluation replaces the Tx position.
        eval_noisy: Validation/test inputs come from a deterministic copy in ``eval_copies_dir``.
        eval_copies_dir: Copies for noisy evaluation (default ``copies_dir``).
        obs_max_fraction: Training observation fraction ~ U[0, obs_max_fraction] of valid pixels.
        eval_obs_fraction: Fixed fraction for validation/test (``None``: U[0, obs_max_fraction], seeded per sample).
        obs_mask_channel: Add the observation mask as an input channel.
        fspl_channel: Add a normalised FSPL channel.
        augment: Random horizontal flip (p 0.5) and rot90 during training.
        batch_size: Batch size.
        num_workers: DataLoader workers.
        seed: Seed of the evaluation observation draws.
        split_name: Split JSON name.
    """

    def __init__(
        self,
        root: str,
        encoding: str = "classes",
        snda: bool = False,
        n_copies: int | None = None,
        copies_dir: str = "sev0.5",
        perturb_rasters: bool = True,
        perturb_tx: bool = True,
        eval_noisy: bool = False,
        eval_copies_dir: str | None = None,
        obs_max_fraction: float = 0.2,
        eval_obs_fraction: float | None = None,
        obs_mask_channel: bool = False,
        fspl_channel: bool = False,
        augment: bool = True,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        split_name: str = split_file_name(),
    ) -> None:
        super().__init__()
        if encoding not in ("binary", "classes", "properties", "none"):
            raise ValueError(f"encoding must be binary/classes/properties/none, got {encoding!r}")
        self.root, self.encoding, self.snda, self.n_copies = root, encoding, snda, n_copies
        self.copies_dir, self.eval_copies_dir = copies_dir, eval_copies_dir or copies_dir
        self.perturb_rasters, self.perturb_tx, self.eval_noisy = perturb_rasters, perturb_tx, eval_noisy
        self.obs_max_fraction, self.eval_obs_fraction = obs_max_fraction, eval_obs_fraction
        self.obs_mask_channel, self.fspl_channel, self.augment = obs_mask_channel, fspl_channel, augment
        self.batch_size, self.num_workers, self.seed, self.split_name = batch_size, num_workers, seed, split_name
        self.layout = RadioMapLayout(Path(root), copies_dir=copies_dir, split_name=split_name)
        self.eval_layout = RadioMapLayout(Path(root), copies_dir=self.eval_copies_dir, split_name=split_name)
        self.splits = self.layout.read_split()
        self.frequency_hz = float(self.layout.rm_params.get("frequency_hz", 5.82e9))

    @property
    def num_channels(self) -> int:
        """Input channels the batches carry."""
        return input_channels(self.encoding, len(self.layout.heights), fspl_channel=self.fspl_channel,
                              obs_mask_channel=self.obs_mask_channel)  # fmt: skip

    def dataset(self, split: str) -> RadioMapDataset:
        """Dataset of ``split`` (``train``/``val``/``test``) with this module's copy settings."""
        if split == "train":
            layout, mode = self.layout, "random" if self.snda and self.n_copies != 0 else "none"
        else:
            layout, mode = self.eval_layout, "deterministic" if self.eval_noisy else "none"
        return RadioMapDataset(layout, self.splits[split], encoding=self.encoding, copy_mode=mode,
                               n_copies=self.n_copies, perturb_rasters=self.perturb_rasters,
                               perturb_tx=self.perturb_tx)  # fmt: skip

    def _loader(self, split: str, shuffle: bool) -> DataLoader[Any]:
        return DataLoader(self.dataset(split), batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)  # fmt: skip

    def train_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("test", False)

    def prepare_batch(self, batch: dict[str, torch.Tensor], *, training: bool) -> dict[str, torch.Tensor]:
        """Raw batch (on its device) → ``{"input", "target", "mask", "obs", "tx"}``.

        Training: fraction ~ U[0, obs_max_fraction] from the global RNG, random flip/rot90. Evaluation: observations
        drawn with a generator seeded by ``(seed, index)`` so every run sees the same pixels.
        """
        target_u8 = batch["target"][:, None]
        valid = target_u8 > 0
        target = target_u8.float() / 255.0
        b = target.shape[0]
        if training:
            fraction = torch.rand(b) * self.obs_max_fraction
            obs = sample_observations(valid, fraction)
        else:
            obs_list = []
            for i in range(b):
                g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(batch["index"][i]))
                f = self.eval_obs_fraction
                frac = torch.tensor([f]) if f is not None else torch.rand(1, generator=g) * self.obs_max_fraction
                obs_list.append(sample_observations(valid[i : i + 1], frac, g))
            obs = torch.cat(obs_list)
        x = build_inputs(batch["env"], batch["tx"], target, obs, encoding=self.encoding,
                         n_classes=self.layout.n_classes, extent_m=self.layout.extent_m,
                         obs_mask_channel=self.obs_mask_channel,
                         fspl_frequency_hz=self.frequency_hz if self.fspl_channel else None)  # fmt: skip
        if training and self.augment:
            flip = torch.rand(b) < 0.5
            rot = torch.randint(0, 4, (b,))
            x, target, valid, obs = augment_joint([x, target, valid, obs], flip, rot)
        return {"input": x, "target": target, "mask": valid, "obs": obs, "tx": batch["tx"]}

    def on_after_batch_transfer(self, batch: dict[str, torch.Tensor], dataloader_idx: int) -> dict[str, torch.Tensor]:
        """Assemble the inputs on the batch's device (training augmentations only while fitting)."""
        training = self.trainer is not None and self.trainer.training
        return self.prepare_batch(batch, training=training)
