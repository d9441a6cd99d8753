"""Label-noise injection for any data module whose batches carry ``index`` (the row of the training split).

The noise is drawn once, on the training split only, in ``setup``; validation and test labels stay clean. The
noisy matrix is saved with the run (``noise_file`` or ``<log_dir>/noisy_labels.npz``) and put on the batch's
device; ``on_after_batch_transfer`` replaces ``batch["label"]`` of training batches by ``noisy[batch["index"]]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from rsim.nar.noise import NoisyLabels, inject_noise, load_noisy_labels, validate_rate
from torch import Tensor

__all__ = ["NoiseInjection"]


class NoiseInjection:
    """Mixin: keeps the clean and noisy training labels and swaps them into training batches on the device.

    Attributes:
        noisy_labels: The :class:`~rsim.nar.noise.NoisyLabels` of the training split (after ``setup``).
    """

    noisy_labels: NoisyLabels | None
    add_rate: float
    sub_rate: float
    noise_seed: int
    noise_file: str | None
    _noisy_device: dict[torch.device, Tensor]

    def init_noise(self, add_rate: float, sub_rate: float, noise_seed: int, noise_file: str | None) -> None:
        """Validate and store the noise options (call from ``__init__``)."""
        self.add_rate = validate_rate("add_rate", add_rate)
        self.sub_rate = validate_rate("sub_rate", sub_rate)
        self.noise_seed = int(noise_seed)
        self.noise_file = noise_file
        self.noisy_labels = None
        self._noisy_device = {}

    def apply_noise(self, clean_train: np.ndarray, source: str) -> NoisyLabels:
        """Draw (or reload) the noisy training labels once and save them with the run."""
        if self.noisy_labels is not None:
            return self.noisy_labels
        target = self._noise_path()
        if self.noise_file is not None and Path(self.noise_file).is_file():
            loaded = load_noisy_labels(self.noise_file)
            if loaded.clean.shape != clean_train.shape or not np.array_equal(
                loaded.clean, clean_train.astype(np.uint8)
            ):
                raise ValueError(
                    f"{self.noise_file}: its clean labels {loaded.clean.shape} differ from the training split of "
                    f"{source} {clean_train.shape}; delete the file or point noise_file elsewhere"
                )
            if (loaded.add_rate, loaded.sub_rate, loaded.seed) != (self.add_rate, self.sub_rate, self.noise_seed):
                raise ValueError(
                    f"{self.noise_file}: written with add_rate={loaded.add_rate}, sub_rate={loaded.sub_rate}, "
                    f"seed={loaded.seed}, but the data module asks for add_rate={self.add_rate}, "
                    f"sub_rate={self.sub_rate}, seed={self.noise_seed}"
                )
            self.noisy_labels = loaded
        else:
            self.noisy_labels = inject_noise(
                clean_train, add_rate=self.add_rate, sub_rate=self.sub_rate, seed=self.noise_seed, source=source
            )
            if target is not None:
                self.noisy_labels.save(target)
                rank_zero_info(f"noisy training labels ({self.noisy_labels.noise_type}) saved to {target}")
        self._noisy_device = {}
        return self.noisy_labels

    def _noise_path(self) -> Path | None:
        if self.noise_file is not None:
            return Path(self.noise_file)
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return None
        log_dir = trainer.log_dir or trainer.default_root_dir
        return Path(log_dir) / "noisy_labels.npz"

    def noisy_on(self, device: torch.device) -> Tensor:
        """The noisy ``(N, C)`` float matrix on ``device`` (copied once per device)."""
        if self.noisy_labels is None:
            raise RuntimeError("noisy labels are not set up yet: call setup('fit') first")
        if device not in self._noisy_device:
            self._noisy_device[device] = torch.from_numpy(self.noisy_labels.noisy.astype(np.float32)).to(device)
        return self._noisy_device[device]

    def replace_train_labels(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Return the batch with ``label`` = noisy labels of its ``index`` rows and ``clean_label`` kept."""
        index = batch["index"]
        batch["clean_label"] = batch["label"]
        batch["label"] = self.noisy_on(batch["label"].device)[index.to(batch["label"].device).long()]
        return batch
