"""Run a TerraScope model over TerraScope-Bench items (greedy decoding with region injection)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from rsim.core.errors import DataFormatError, MissingKeyError
from rsim.terrascope.build import format_prompt, tokens_of
from rsim.terrascope.data.bench import BenchItem, format_mcq
from rsim.terrascope.data.datamodule import IMAGENET_MEAN, IMAGENET_STD
from rsim.terrascope.data.images import decode_png
from rsim.terrascope.evaluate import Prediction
from rsim.terrascope.tasks import TerraScopeTask

__all__ = ["load_task", "predict_bench"]


def load_task(
    config: str | os.PathLike[str], ckpt: str | os.PathLike[str] | None = None
) -> tuple[TerraScopeTask, dict[str, Any]]:
    """Build the task from a LightningCLI YAML (``model.init_args``) and optionally load a checkpoint's weights.

    Returns:
        The task (eval mode) and the ``data.init_args`` mapping of the config (may be empty).

    Raises:
        FileNotFoundError: The config or checkpoint is missing.
        MissingKeyError: The config has no ``model.init_args``.
    """
    path = Path(config)
    if not path.is_file():
        raise FileNotFoundError(f"config {path} is missing")
    cfg = yaml.safe_load(path.read_text()) or {}
    try:
        init = dict(cfg["model"]["init_args"])
    except (KeyError, TypeError) as exc:
        raise MissingKeyError(f"{path}: expected model.init_args (a LightningCLI config of TerraScopeTask)") from exc
    task = TerraScopeTask(**init)
    if ckpt is not None:
        if not Path(ckpt).is_file():
            raise FileNotFoundError(f"checkpoint {ckpt} is missing")
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        if "state_dict" not in state:
            raise DataFormatError(f"{ckpt}: not a Lightning checkpoint (no 'state_dict')")
        task.load_state_dict(state["state_dict"])
    data = dict((cfg.get("data") or {}).get("init_args") or {})
    return task.eval(), data


@torch.no_grad()
def predict_bench(
    task: TerraScopeTask,
    items: Sequence[BenchItem],
    *,
    img_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    max_new_tokens: int = 128,
    device: str = "cpu",
) -> list[Prediction]:
    """Generate an answer (and one mask per ``[SEG]``, at the image's size, thresholded at 0.5) for every item."""
    model = task.model.to(device)
    tok = task.tokenizer
    out = []
    for it in items:
        img = decode_png(it.image, source=f"bench item {it.index} image")
        x = torch.from_numpy(img.copy()).to(device).permute(2, 0, 1)[None].float() / 255.0
        x = F.interpolate(x, size=(img_size, img_size), mode="bilinear", align_corners=False)
        x = (x - torch.tensor(mean, device=device)[None, :, None, None]) / torch.tensor(std, device=device)[
            None, :, None, None
        ]
        question = "<image>\n" + format_mcq(it.question, it.candidates)
        prompt = format_prompt(
            question,
            n_frames=1,
            tokens_per_image=model.tokens_per_image,
            chat_template=task.hparams["chat_template"],
            system_prompt=task.hparams["system_prompt"],
        )
        ids = torch.tensor(tokens_of(tok, prompt), device=device)
        res = model.generate(ids, x, max_new_tokens=max_new_tokens, decode=tok.decode, mask_size=img.shape[:2])
        text = tok.decode(res.token_ids, skip_special_tokens=False)
        out.append(Prediction(it.index, text, [(m > 0.5).cpu().numpy() for m in res.masks]))
    return out
