"""Terra-CoT / referring-segmentation training data: raw arrays in workers, resize/normalise on the batch's device."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from rsim.core.errors import DataFormatError
from rsim.terrascope.data.cot import SEG, CotRecord, load_cot
from rsim.terrascope.data.images import decode_png
from rsim.terrascope.models.region import frame_from_text
from torch.utils.data import DataLoader, Dataset

__all__ = ["TerraCotDataModule", "TerraCotDataset", "collate_raw", "segment_frames"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def segment_frames(response: str, n_frames: int) -> list[int]:
    """Frame of each ``[SEG]`` in a response: the last ``"Image: t"`` before it (0 when none)."""
    pieces = response.split(SEG)[:-1]
    frames, text = [], ""
    for piece in pieces:
        text += piece
        frames.append(frame_from_text(text, n_frames))
    return frames


class TerraCotDataset(Dataset[dict[str, Any]]):
    """Records of a Terra-CoT JSON with their images (``image_root/<image>``; SAR from ``vh/`` and ``vv/``).

    A sample is ``{"images": uint8 (T, H, W, 3), "sar": uint8 (T, H, W, 3) or None, "masks": bool (M, H, W),
    "question": str, "response": str, "seg_frames": list[int], "id": str}``.

    Args:
        json_path: Terra-CoT or referring-segmentation JSON.
        image_root: Folder of ``images/`` (and ``vh/``, ``vv/``); default: the JSON's folder.
        use_sar: Read the SAR pair when both ``vh/<name>`` and ``vv/<name>`` exist.
    """

    def __init__(
        self,
        json_path: str | os.PathLike[str],
        image_root: str | os.PathLike[str] | None = None,
        *,
        use_sar: bool = True,
    ) -> None:
        self.json_path = Path(json_path)
        self.records: list[CotRecord] = load_cot(self.json_path, check_masks=False)
        self.root = Path(image_root) if image_root is not None else self.json_path.parent
        self.use_sar = use_sar

    def __len__(self) -> int:
        return len(self.records)

    def _read(self, folder: str, name: str, record: str) -> np.ndarray:
        path = self.root / folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{record}: image {path} is missing")
        return decode_png(path.read_bytes(), source=str(path))

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        src = f"{self.json_path} record {index} ({rec.id})"
        names = [rec.image] if isinstance(rec.image, str) else list(rec.image)
        images = np.stack([self._read("images", n, src) for n in names])
        sar = None
        if self.use_sar and all((self.root / p / n).is_file() for p in ("vh", "vv") for n in names):
            vh = np.stack([self._read("vh", n, src)[..., 0] for n in names]).astype(np.float32)
            vv = np.stack([self._read("vv", n, src)[..., 0] for n in names]).astype(np.float32)
            sar = np.stack([vh, vv, (vh + vv) / 2], axis=-1).round().astype(np.uint8)
        masks = rec.decoded_masks(source=src)
        for k, m in enumerate(masks):
            if m.shape != images.shape[1:3]:
                raise DataFormatError(f"{src}: mask {k} is {m.shape}, image is {images.shape[1:3]}")
        stack = np.stack(masks) if masks else np.zeros((0, *images.shape[1:3]), dtype=bool)
        return {
            "images": torch.from_numpy(images),
            "sar": None if sar is None else torch.from_numpy(sar),
            "masks": torch.from_numpy(stack),
            "question": rec.question,
            "response": rec.response,
            "seg_frames": segment_frames(rec.response, len(names)),
            "id": rec.id,
        }


def collate_raw(batch: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """Keep samples as lists (images of different sizes and mask counts)."""
    return {key: [b[key] for b in batch] for key in batch[0]}


class TerraCotDataModule(LightningDataModule):
    """Terra-CoT training data; images are resized to ``img_size`` and normalised on the device.

    Args:
        train_json: Training records.
        val_json: Validation records (optional).
        image_root: Image folder root (default: each JSON's folder).
        img_size: Model input side.
        batch_size: Samples per batch.
        num_workers: DataLoader workers.
        use_sar: Read SAR pairs when present.
        mean: Normalisation mean (0–1 scale).
        std: Normalisation std.
    """

    def __init__(
        self,
        train_json: str,
        val_json: str | None = None,
        image_root: str | None = None,
        img_size: int = 448,
        batch_size: int = 2,
        num_workers: int = 0,
        use_sar: bool = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.train_json, self.val_json, self.image_root = train_json, val_json, image_root
        self.img_size, self.batch_size, self.num_workers, self.use_sar = img_size, batch_size, num_workers, use_sar
        self.mean, self.std = tuple(mean), tuple(std)

    def setup(self, stage: str | None = None) -> None:  # noqa: D102
        self.train_set = TerraCotDataset(self.train_json, self.image_root, use_sar=self.use_sar)
        self.val_set = TerraCotDataset(self.val_json, self.image_root, use_sar=self.use_sar) if self.val_json else None

    def _loader(self, ds: Dataset[dict[str, Any]], shuffle: bool) -> DataLoader[dict[str, Any]]:
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate_raw,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader[dict[str, Any]]:  # noqa: D102
        return self._loader(self.train_set, True)

    def val_dataloader(self) -> DataLoader[dict[str, Any]]:  # noqa: D102
        return self._loader(self.val_set, False) if self.val_set is not None else []  # type: ignore[return-value]

    def prepare_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (T, H, W, 3) → normalised float (T, 3, S, S) on the same device."""
        x = images.permute(0, 3, 1, 2).float() / 255.0
        x = F.interpolate(x, size=(self.img_size, self.img_size), mode="bilinear", align_corners=False)
        mean = torch.tensor(self.mean, device=x.device)[None, :, None, None]
        std = torch.tensor(self.std, device=x.device)[None, :, None, None]
        return (x - mean) / std

    def prepare_masks(self, masks: torch.Tensor) -> torch.Tensor:
        """Bool (M, H, W) → float (M, S, S) nearest-resized."""
        if len(masks) == 0:
            return masks.float().new_zeros(0, self.img_size, self.img_size)
        return F.interpolate(masks[:, None].float(), size=(self.img_size, self.img_size), mode="nearest")[:, 0]

    def on_after_batch_transfer(self, batch: dict[str, list[Any]], dataloader_idx: int) -> dict[str, list[Any]]:
        """Resize and normalise images, resize masks (on the device)."""
        batch["images"] = [self.prepare_images(x) for x in batch["images"]]
        batch["sar"] = [None if x is None else self.prepare_images(x) for x in batch["sar"]]
        batch["masks"] = [self.prepare_masks(m) for m in batch["masks"]]
        return batch
