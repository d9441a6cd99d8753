"""MagicBathyNet datasets and the LightningDataModule (device-side normalisation, resize and flips)."""

from __future__ import annotations

import os
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from rsim.seabednet.data.magicbathynet import MagicBathyNetReader
from rsim.seabednet.losses import valid_depth_mask
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

__all__ = ["MagicBathyNetDataModule", "MagicBathyNetPatches", "prepare_image"]


class MagicBathyNetPatches(Dataset[dict[str, Any]]):
    """Raw patches (or random windows of them) of one site and modality.

    Items are raw arrays only: ``image`` float32 ``[C, h, w]`` (file values), ``depth`` float32 ``[1, h, w]``
    (negative metres, 0 = no label), ``label`` int64 ``[h, w]`` (all "undefined" if the patch has no label
    file) and ``id``.

    Args:
        reader: Reader of the site/modality.
        ids: Patch IDs.
        window: Side of a random window in native pixels (``None``: whole patch).
        samples: Items per epoch for random windows (``None``: one per patch).
    """

    def __init__(
        self,
        reader: MagicBathyNetReader,
        ids: list[str],
        window: int | None = None,
        samples: int | None = None,
    ) -> None:
        if not ids:
            raise ValueError(f"no patch IDs for {reader.site}/{reader.modality}")
        self.reader = reader
        self.ids = list(ids)
        self.window = window
        self.samples = samples
        self._cache: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return self.samples if self.samples is not None else len(self.ids)

    def _load(self, pid: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if pid not in self._cache:
            image, _ = self.reader.read_image(pid)
            depth = self.reader.read_depth(pid)
            if depth.shape != image.shape[1:]:
                raise ValueError(
                    f"{self.reader.path('depth', pid)}: size {depth.shape} differs from the image {image.shape[1:]}"
                )
            if self.reader.path("gts", pid).is_file():
                label = self.reader.read_labels(pid)
            else:
                label = np.full(depth.shape, self.reader.spec.undefined_index, dtype=np.int64)
            self._cache[pid] = (image, depth, label)
        return self._cache[pid]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.samples is not None:
            pid = self.ids[int(torch.randint(len(self.ids), ()))]
        else:
            pid = self.ids[index]
        image, depth, label = self._load(pid)
        h, w = depth.shape
        if self.window is not None and (h > self.window or w > self.window):
            r = int(torch.randint(h - self.window + 1, ())) if h > self.window else 0
            c = int(torch.randint(w - self.window + 1, ())) if w > self.window else 0
            sl = (slice(r, r + self.window), slice(c, c + self.window))
            image, depth, label = image[:, sl[0], sl[1]], depth[sl], label[sl]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "depth": torch.from_numpy(np.ascontiguousarray(depth))[None],
            "label": torch.from_numpy(np.ascontiguousarray(label)),
            "id": pid,
        }


def prepare_image(image: Tensor, norm_param: Tensor, channel_order: str = "native") -> Tensor:
    """Normalise a raw image batch ``[B, C, H, W]``: ``(x - min) / (max - min)`` clamped to ``[0, 1]``.

    Args:
        image: Raw values.
        norm_param: ``[2, C]`` min/max rows.
        channel_order: ``native`` or ``reverse`` (e.g. S2 stored as B, G, R).
    """
    if channel_order == "reverse":
        image = image.flip(1)
    lo = norm_param[0].to(image).view(1, -1, 1, 1)
    hi = norm_param[1].to(image).view(1, -1, 1, 1)
    return ((image - lo) / (hi - lo)).clamp(0.0, 1.0)


class MagicBathyNetDataModule(L.LightningDataModule):
    """MagicBathyNet for joint bathymetry + seabed classification (one site x modality).

    Workers only read raw arrays; normalisation, depth scaling, the validity mask, resizing to
    ``input_size`` and random flips run on the batch's device in ``on_after_batch_transfer``.

    Args:
        root: Dataset root (official layout).
        site: ``agia_napa`` or ``puck_lagoon``.
        modality: ``aerial``, ``s2`` or ``spot6``.
        split_source: Which shipped split file defines train/test (``pixel_class`` or ``bathymetry``).
        batch_size: Batch size.
        num_workers: DataLoader workers.
        window_size: Random training window in native pixels (``None``: whole patches).
        train_samples_per_epoch: Random windows per epoch (``None``: one per training patch).
        input_size: Network input side; batches are resized to it on the device.
        channel_order: ``native`` or ``reverse`` band order.
        depth_norm: ``site`` divides depth by the site constant (-30.443 / -11); ``none`` uses positive
            metres.
        flips: Random horizontal/vertical flips during training.
        upsample_mode: Interpolation for images smaller than ``input_size`` (``nearest`` as in MagicBathyNet
            training, or ``bilinear``); larger images are always downsampled with antialiased bilinear.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        site: str = "agia_napa",
        modality: str = "aerial",
        split_source: Literal["pixel_class", "bathymetry"] = "pixel_class",
        batch_size: int = 4,
        num_workers: int = 0,
        window_size: int | None = None,
        train_samples_per_epoch: int | None = None,
        input_size: int = 256,
        channel_order: Literal["native", "reverse"] = "native",
        depth_norm: Literal["site", "none"] = "site",
        flips: bool = True,
        upsample_mode: Literal["nearest", "bilinear"] = "nearest",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.reader = MagicBathyNetReader(root, site, modality)
        if depth_norm not in ("site", "none"):
            raise ValueError(f"depth_norm must be 'site' or 'none', got {depth_norm!r}")
        self.norm_param = torch.from_numpy(self.reader.norm_param())
        self.train_ids: list[str] = []
        self.test_ids: list[str] = []
        self.native_tile: int | None = None

    @property
    def num_classes(self) -> int:
        """Classes including "undefined"."""
        return self.reader.spec.num_classes

    @property
    def undefined_index(self) -> int:
        """Index of the "undefined" class."""
        return self.reader.spec.undefined_index

    @property
    def depth_divisor(self) -> float:
        """Targets are ``depth_m / depth_divisor`` (negative metres -> positive)."""
        return self.reader.spec.depth_norm if self.hparams["depth_norm"] == "site" else -1.0

    @property
    def depth_scale(self) -> float:
        """Metres per target unit."""
        return -self.depth_divisor

    def setup(self, stage: str | None = None) -> None:
        """Read the split file (missing patches are an error naming the file)."""
        train, test = self.reader.split(self.hparams["split_source"])
        have = set(self.reader.available_ids("img")) & set(self.reader.available_ids("depth"))
        missing = [i for i in train + test if i not in have]
        if missing:
            raise FileNotFoundError(
                f"{self.reader.site_dir}: split lists IDs without img/depth files "
                f"for {self.reader.modality}: {missing[:10]}"
            )
        self.train_ids, self.test_ids = train, test
        image, _ = self.reader.read_image((train or test)[0])
        side = min(image.shape[1:])
        window = self.hparams["window_size"]
        self.native_tile = int(min(side, window) if window else side)

    def _loader(self, ds: Dataset[dict[str, Any]], shuffle: bool) -> DataLoader[dict[str, Any]]:
        return DataLoader(
            ds,
            batch_size=self.hparams["batch_size"],
            shuffle=shuffle,
            num_workers=self.hparams["num_workers"],
            persistent_workers=self.hparams["num_workers"] > 0,
        )

    def train_dataloader(self) -> DataLoader[dict[str, Any]]:
        """Random windows (or whole patches) of the training IDs."""
        ds = MagicBathyNetPatches(
            self.reader, self.train_ids, self.hparams["window_size"], self.hparams["train_samples_per_epoch"]
        )
        return self._loader(ds, shuffle=self.hparams["train_samples_per_epoch"] is None)

    def val_dataloader(self) -> DataLoader[dict[str, Any]]:
        """Whole test patches (MagicBathyNet ships train/test only; test doubles as validation)."""
        return self._loader(MagicBathyNetPatches(self.reader, self.test_ids), shuffle=False)

    def test_dataloader(self) -> DataLoader[dict[str, Any]]:
        """Whole test patches."""
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader[dict[str, Any]]:
        """Whole test patches."""
        return self.val_dataloader()

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """Normalise, mask, scale depth, resize to ``input_size`` and flip (training) on the device."""
        trainer = self.trainer
        training = bool(trainer is not None and trainer.training)
        return self.device_transform(batch, training=training)

    def device_transform(self, batch: dict[str, Any], training: bool = False) -> dict[str, Any]:
        """The device-side part of the pipeline (also used by prediction and tests)."""
        raw = batch["image"].float()
        mask = valid_depth_mask(batch["depth"], raw)
        image = prepare_image(raw, self.norm_param, self.hparams["channel_order"])
        depth = torch.where(mask, batch["depth"] / self.depth_divisor, torch.zeros_like(batch["depth"]))
        label = batch["label"].long()
        size = self.hparams["input_size"]
        if image.shape[-2:] != (size, size):
            down = image.shape[-2] > size or image.shape[-1] > size
            if down:
                image = F.interpolate(image, size=(size, size), mode="bilinear", antialias=True)
            elif self.hparams["upsample_mode"] == "bilinear":
                image = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)
            else:
                image = F.interpolate(image, size=(size, size), mode="nearest")
            depth = F.interpolate(depth, size=(size, size), mode="nearest")
            mask = F.interpolate(mask.float(), size=(size, size), mode="nearest") > 0.5
            label = F.interpolate(label[:, None].float(), size=(size, size), mode="nearest")[:, 0].long()
        if training and self.hparams["flips"]:
            b = image.shape[0]
            for dim in (-1, -2):
                flip = torch.rand(b, device=image.device) < 0.5
                fb = flip.view(b, 1, 1, 1)
                image = torch.where(fb, image.flip(dim), image)
                depth = torch.where(fb, depth.flip(dim), depth)
                mask = torch.where(fb, mask.flip(dim), mask)
                label = torch.where(flip.view(b, 1, 1), label.flip(dim), label)
        out = dict(batch)
        out.update(image=image, depth=depth, label=label, mask=mask)
        return out
