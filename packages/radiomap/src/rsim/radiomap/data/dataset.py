"""Dataset over ``(env, tx)`` pairs of one :class:`RadioMapLayout`, with SNDA copy selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from rsim.radiomap.data.layout import RadioMapLayout
from torch.utils.data import Dataset

__all__ = ["RadioMapDataset"]


class RadioMapDataset(Dataset[dict[str, torch.Tensor]]):
    """Raw samples ``{"env": uint8 [C, S, S], "tx": float32 [3], "target": uint8 [M, M], "index": int64}``.

    Input selection (the target is always the original room's map):

    - ``copy_mode="none"``: original rasters and Tx;
    - ``"random"`` (SNDA training): a random perturbed copy per access, drawn with torch's RNG (seeded per worker);
    - ``"deterministic"`` (noisy evaluation): copy ``RandomState(index·1000).randint(n_copies)``.

    ``perturb_rasters`` / ``perturb_tx`` choose which part of the copy replaces the original.

    Args:
        layout: Dataset root.
        pairs: ``(env, tx)`` pairs (e.g. one split).
        encoding: ``binary``, ``classes``, ``properties`` or ``none`` (no environment input).
        copy_mode: See above.
        n_copies: Copies to draw from (``None``: all present; 0 disables copies).
        perturb_rasters: Use the copy's rasters.
        perturb_tx: Use the copy's Tx position.
    """

    def __init__(
        self,
        layout: RadioMapLayout,
        pairs: list[tuple[int, int]],
        *,
        encoding: str = "classes",
        copy_mode: str = "none",
        n_copies: int | None = None,
        perturb_rasters: bool = True,
        perturb_tx: bool = True,
    ) -> None:
        if copy_mode not in ("none", "random", "deterministic"):
            raise ValueError(f"copy_mode must be none/random/deterministic, got {copy_mode!r}")
        self.layout, self.pairs, self.encoding = layout, list(pairs), encoding
        self.copy_mode, self.perturb_rasters, self.perturb_tx = copy_mode, perturb_rasters, perturb_tx
        self._n_copies: dict[int, int] = {}
        self.max_copies = n_copies
        if copy_mode != "none" and n_copies != 0:
            for env in sorted({e for e, _ in self.pairs}):
                n = layout.count_copies(env)
                if n == 0:
                    raise FileNotFoundError(
                        f"{layout.env_prefix(env, 0)}_tx.json: no perturbed copies of project{env} in "
                        f"{Path(layout.root) / 'perturbed' / layout.copies_dir} (copy_mode={copy_mode!r})"
                    )
                self._n_copies[env] = n if n_copies is None else min(n, n_copies)

    def __len__(self) -> int:
        return len(self.pairs)

    def copy_index(self, index: int) -> int | None:
        """Copy used for sample ``index`` (``None`` = original)."""
        env = self.pairs[index][0]
        n = self._n_copies.get(env, 0)
        if self.copy_mode == "none" or n == 0:
            return None
        if self.copy_mode == "random":
            return int(torch.randint(n, ()).item())
        return int(np.random.RandomState(index * 1000).randint(n))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        env, tx = self.pairs[index]
        k = self.copy_index(index)
        env_raster = self.layout.read_environment(env, self.encoding, copy=k if self.perturb_rasters else None)
        tx_all = self.layout.read_tx(env, copy=k if self.perturb_tx else None)
        if tx not in tx_all:
            raise KeyError(f"{self.layout.env_prefix(env, k if self.perturb_tx else None)}_tx.json: no Tx {tx}")
        return {
            "env": torch.from_numpy(env_raster),
            "tx": torch.tensor(tx_all[tx], dtype=torch.float32),
            "target": torch.from_numpy(self.layout.read_target(env, tx)),
            "index": torch.tensor(index, dtype=torch.long),
        }
