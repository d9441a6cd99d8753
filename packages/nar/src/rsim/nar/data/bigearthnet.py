"""BigEarthNet (v1/v2) through rsim-core with NAR's noise injection on the training split."""

from __future__ import annotations

from typing import Any

from rsim.core.data import BigEarthNetDataModule
from rsim.nar.data.noisy import NoiseInjection

__all__ = ["NoisyBigEarthNetDataModule"]


class NoisyBigEarthNetDataModule(NoiseInjection, BigEarthNetDataModule):
    """:class:`rsim.core.data.BigEarthNetDataModule` whose training labels carry synthetic noise.

    Args:
        add_rate: Additive noise rate (fraction of each class's clean positives).
        sub_rate: Subtractive noise rate.
        noise_seed: Seed of the numpy Generator that draws the noise.
        noise_file: Where the noisy matrix is saved (and reloaded from if present); default
            ``<log_dir>/noisy_labels.npz``.
        **kwargs: Every argument of :class:`~rsim.core.data.BigEarthNetDataModule`.
    """

    def __init__(
        self,
        add_rate: float = 0.0,
        sub_rate: float = 0.0,
        noise_seed: int = 0,
        noise_file: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_noise(add_rate, sub_rate, noise_seed, noise_file)

    def setup(self, stage: str | None = None) -> None:  # noqa: D102
        super().setup(stage)
        if "train" in self.datasets:
            self.apply_noise(self.datasets["train"].table.labels, source=f"BigEarthNet train split ({self.root})")

    @property
    def num_train_samples(self) -> int:
        """Rows of the training split."""
        if "train" not in self.datasets:
            self.setup("fit")
        return len(self.datasets["train"])

    def nrl_dataloader(self) -> Any:
        """Training split in index order, for an eval-mode probability pass."""
        return self._loader("train", shuffle=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:  # noqa: D102
        out = super().on_after_batch_transfer(batch, dataloader_idx)
        if self.trainer is not None and self.trainer.training:
            out = self.replace_train_labels(out)
        return out
