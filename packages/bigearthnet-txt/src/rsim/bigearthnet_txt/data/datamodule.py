"""BigEarthNet.txt data module: annotation parquet + images from rsim-core's GeoTIFF tree or LMDB store.

Workers return raw band arrays and strings. On the batch's device the bands are stacked, resampled and normalised
(``rsim.core.data.transforms``); random flips and 90° rotations are applied per sample, and the same geometric
transform is applied to the boxes in the answers, the points in the prompts and the compass words of the text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from lightning import LightningDataModule
from rsim.bigearthnet_txt.attributes import DIRECTIONS
from rsim.bigearthnet_txt.evaluate import parse_box
from rsim.bigearthnet_txt.generate import fmt_coord
from rsim.bigearthnet_txt.pipeline import read_annotations
from rsim.core.data import BigEarthNetV2Tree, LmdbPatchStore, Normalize
from rsim.core.data.bigearthnet import PatchReader
from rsim.core.data.nomenclature import S1_BANDS, band_presets
from rsim.core.data.stats import band_stats
from rsim.core.data.transforms import stack_bands
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

_POINT = re.compile(r"<point>\(\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*\)</point>")
_BOX = re.compile(r"\[\s*-?\d+(?:\.\d+)?\s+-?\d+(?:\.\d+)?\s*,\s*-?\d+(?:\.\d+)?\s+-?\d+(?:\.\d+)?\s*\]")
_DIRECTION = re.compile(r"\b(" + "|".join(sorted(DIRECTIONS, key=len, reverse=True)) + r")\b")


class AnnotationDataset(Dataset[dict[str, Any]]):
    """One sample per annotation row: raw bands of its patch plus the text fields."""

    def __init__(self, frame: pd.DataFrame, reader: PatchReader, bands: Sequence[str]) -> None:
        self.frame = frame.reset_index(drop=True)
        self.reader = reader
        self.s1 = [b for b in bands if b in S1_BANDS]
        self.s2 = [b for b in bands if b not in S1_BANDS]

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.frame.iloc[index]
        bands: dict[str, np.ndarray] = {}
        if self.s2:
            bands.update(self.reader.read_s2(str(row["patch_id"]), self.s2))
        if self.s1:
            bands.update(self.reader.read_s1(str(row["s1_name"]), self.s1))
        return {
            "bands": {k: torch.from_numpy(v.astype(np.float32)) for k, v in bands.items()},
            "input": str(row["input"]),
            "output": str(row["output"]),
            "type": str(row["type"]),
            "category": str(row["category"]),
            "index": index,
        }


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack bands per name; keep strings as lists."""
    out: dict[str, Any] = {"bands": {k: torch.stack([s["bands"][k] for s in samples]) for k in samples[0]["bands"]}}
    for key in ("input", "output", "type", "category"):
        out[key] = [s[key] for s in samples]
    out["index"] = torch.tensor([s["index"] for s in samples])
    return out


def _map_xy(x: Tensor, y: Tensor, hflip: Tensor, vflip: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
    """Normalised (x = column, y = row) coordinates under h-flip, then v-flip, then ``torch.rot90`` k times."""
    x = torch.where(hflip, 1 - x, x)
    y = torch.where(vflip, 1 - y, y)
    for step in range(3):  # rot90 counter-clockwise: (x, y) -> (y, 1 - x), applied k times
        rot = k > step
        x, y = torch.where(rot, y, x), torch.where(rot, 1 - x, y)
    return x, y


def _map_direction(word: str, hflip: bool, vflip: bool, k: int) -> str:
    i = DIRECTIONS.index(word)  # counter-clockwise index, east = 0
    if hflip:
        i = (4 - i) % 8
    if vflip:
        i = (-i) % 8
    return DIRECTIONS[(i + 2 * k) % 8]


class BigEarthNetTxtDataModule(LightningDataModule):
    """Annotations of BigEarthNet.txt (the release or ``bigearthnet-txt generate`` output) with their images.

    Args:
        annotations: Released parquet file or a folder of ``part-*.parquet`` shards.
        images: BigEarthNet v2 root (GeoTIFF tree) or an LMDB store (folder with ``data.mdb`` or ``*.lmdb``).
        bands: Band preset of rsim-core or a band list (channel order of the stacked image).
        img_size: Output size on the device.
        normalization: rsim-core statistics table, ``None`` for raw values.
        types, categories, countries, seasons, climate_zones: Keep only rows with these values (``None`` = all).
        train_splits: Splits used for training; ``bench`` is refused unless ``allow_bench_in_training``.
        val_split, test_split: Splits of the validation and test loaders (``test_split="bench"`` for the benchmark).
        allow_bench_in_training: Explicit opt-in to train on the manually verified benchmark split.
        augment, flip_p, rot90_p: Device-side flips and 90° rotations with consistent boxes, points and directions.
        box_axis: Axis order of the coordinates in the text (``xy`` = x is the column).
        batch_size, num_workers: DataLoader settings.
        seed: Seed of the augmentation generator.
    """

    def __init__(
        self,
        annotations: str,
        images: str,
        bands: str | list[str] = "S1S2",
        img_size: int = 120,
        normalization: str | None = "benv2_train_120_bilinear",
        types: list[str] | None = None,
        categories: list[str] | None = None,
        countries: list[str] | None = None,
        seasons: list[str] | None = None,
        climate_zones: list[str] | None = None,
        train_splits: list[str] | None = None,
        val_split: str = "validation",
        test_split: str = "test",
        allow_bench_in_training: bool = False,
        augment: bool = True,
        flip_p: float = 0.5,
        rot90_p: float = 0.5,
        box_axis: Literal["xy", "yx"] = "xy",
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.train_splits = list(train_splits or ["train"])
        if "bench" in self.train_splits and not allow_bench_in_training:
            raise ValueError("the 'bench' split is kept out of training; pass allow_bench_in_training=True to use it")
        self.annotations = annotations
        self.images = images
        self.band_order = band_presets(bands)
        self.img_size = img_size
        self.normalize = Normalize(*band_stats(normalization, self.band_order)) if normalization else None
        self.filters = {
            "type": types,
            "category": categories,
            "country": countries,
            "season": seasons,
            "climate_zone": climate_zones,
        }
        self.val_split, self.test_split = val_split, test_split
        self.augment, self.flip_p, self.rot90_p = augment, flip_p, rot90_p
        self.box_axis = box_axis
        self.batch_size, self.num_workers = batch_size, num_workers
        self.generator = torch.Generator().manual_seed(seed)
        self.frames: dict[str, pd.DataFrame] = {}

    def reader(self) -> PatchReader:
        """GeoTIFF tree or LMDB store, from the ``images`` path."""
        path = Path(self.images)
        if path.suffix == ".lmdb" or (path / "data.mdb").is_file():
            return LmdbPatchStore(path)
        return BigEarthNetV2Tree(path)

    def filtered(self) -> pd.DataFrame:
        """All annotation rows after the filters."""
        frame = read_annotations(self.annotations)
        for column, values in self.filters.items():
            if values is not None:
                frame = frame.loc[frame[column].isin(values)]
        return frame

    def setup(self, stage: str | None = None) -> None:  # noqa: D102
        frame = self.filtered()
        self.frames = {
            "train": frame.loc[frame["split"].isin(self.train_splits)],
            "validation": frame.loc[frame["split"] == self.val_split],
            "test": frame.loc[frame["split"] == self.test_split],
        }
        if not self.hparams["allow_bench_in_training"]:
            assert not (self.frames["train"]["split"] == "bench").any(), "bench rows leaked into training"

    def _loader(self, split: str, shuffle: bool) -> DataLoader[Any]:
        if not self.frames:
            self.setup()
        dataset = AnnotationDataset(self.frames[split], self.reader(), self.band_order)
        return DataLoader(
            dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers, collate_fn=collate
        )

    def train_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("validation", shuffle=False)

    def test_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader[Any]:  # noqa: D102
        return self._loader("test", shuffle=False)

    # -- device side ---------------------------------------------------------------------------------------
    def transform_batch(self, batch: dict[str, Any], *, train: bool) -> dict[str, Any]:
        """Stack/resample/normalise the bands; in training, flip/rotate images, boxes, points and directions."""
        image = stack_bands(batch["bands"], self.band_order, self.img_size)
        if self.normalize is not None:
            image = self.normalize(image)
        out = {k: batch[k] for k in ("input", "output", "type", "category", "index")}
        if train and self.augment:
            image, out["input"], out["output"] = self.geometric(image, out["input"], out["output"])
        out["image"] = image
        return out

    def geometric(
        self, image: Tensor, inputs: list[str], outputs: list[str], params: tuple[Tensor, Tensor, Tensor] | None = None
    ) -> tuple[Tensor, list[str], list[str]]:
        """Random per-sample h-flip, v-flip and rot90 of the image and the same transform of the text geometry.

        Args:
            image: ``(B, C, H, W)`` on any device.
            inputs: Prompts (points ``<point>(x, y)</point>`` and compass words are transformed).
            outputs: Answers (boxes ``[x1 y1, x2 y2]`` and compass words are transformed).
            params: ``(hflip, vflip, k)`` per sample; drawn from the module's generator when ``None``.
        """
        n = image.shape[0]
        if params is None:
            hflip = torch.rand(n, generator=self.generator) < self.flip_p
            vflip = torch.rand(n, generator=self.generator) < self.flip_p
            rotate = torch.rand(n, generator=self.generator) < self.rot90_p
            k = torch.where(rotate, torch.randint(1, 4, (n,), generator=self.generator), 0)
        else:
            hflip, vflip, k = params
        hflip, vflip, k = hflip.to(image.device), vflip.to(image.device), k.to(image.device)
        image = torch.where(hflip.view(-1, 1, 1, 1), image.flip(-1), image)
        image = torch.where(vflip.view(-1, 1, 1, 1), image.flip(-2), image)
        for step in (1, 2, 3):
            image = torch.where((k == step).view(-1, 1, 1, 1), torch.rot90(image, step, dims=(-2, -1)), image)
        boxes = torch.tensor(
            [parse_box(o, "lenient") or (0.0, 0.0, 0.0, 0.0) for o in outputs], dtype=torch.float64
        ).to(image.device)
        points = torch.tensor(
            [[float(v) for v in m.groups()] if (m := _POINT.search(s)) else [0.0, 0.0] for s in inputs],
            dtype=torch.float64,
        ).to(image.device)
        if self.box_axis == "yx":
            boxes, points = boxes[:, [1, 0, 3, 2]], points[:, [1, 0]]
        bx1, by1 = _map_xy(boxes[:, 0], boxes[:, 1], hflip, vflip, k)
        bx2, by2 = _map_xy(boxes[:, 2], boxes[:, 3], hflip, vflip, k)
        new_boxes = torch.stack([torch.minimum(bx1, bx2), torch.minimum(by1, by2), torch.maximum(bx1, bx2),
                                 torch.maximum(by1, by2)], dim=1)  # fmt: skip
        px, py = _map_xy(points[:, 0], points[:, 1], hflip, vflip, k)
        new_points = torch.stack([px, py], dim=1)
        if self.box_axis == "yx":
            new_boxes, new_points = new_boxes[:, [1, 0, 3, 2]], new_points[:, [1, 0]]
        box_list, point_list = new_boxes.cpu().tolist(), new_points.cpu().tolist()
        flags = list(zip(hflip.cpu().tolist(), vflip.cpu().tolist(), k.cpu().tolist(), strict=True))
        new_inputs, new_outputs = [], []
        for i, (text_in, text_out) in enumerate(zip(inputs, outputs, strict=True)):
            h, v, r = flags[i]
            b, p = box_list[i], point_list[i]

            def words(text: str, h: bool = h, v: bool = v, r: int = r) -> str:
                return _DIRECTION.sub(lambda m: _map_direction(m.group(1), h, v, r), text)

            text_in = _POINT.sub(f"<point>({fmt_coord(p[0])}, {fmt_coord(p[1])})</point>", text_in, count=1)
            box = f"[{fmt_coord(b[0])} {fmt_coord(b[1])}, {fmt_coord(b[2])} {fmt_coord(b[3])}]"
            text_out = _BOX.sub(box, text_out, count=1)
            new_inputs.append(words(text_in))
            new_outputs.append(words(text_out))
        return image, new_inputs, new_outputs

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:  # noqa: D102
        training = self.trainer is not None and self.trainer.training
        return self.transform_batch(batch, train=training)
