"""Local transformers models (rewriter LLM, BERTScore and SBERT encoders): folder checks and device choice."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def local_model_folder(path: str | os.PathLike[str], *, role: str, example: str = "") -> Path:
    """``path`` as a folder written by ``save_pretrained``; models are never downloaded.

    Args:
        path: The folder.
        role: What the model is for, used in the error (e.g. ``"BERTScore model"``).
        example: A model name suggested in the error.

    Raises:
        FileNotFoundError: The folder has no ``config.json``.
    """
    folder = Path(path)
    if not (folder / "config.json").is_file():
        hint = f" (e.g. {example})" if example else ""
        raise FileNotFoundError(
            f"{role} folder {folder} has no config.json; expected a local transformers model saved with "
            f"save_pretrained{hint}; models are never downloaded"
        )
    return folder


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when available, else ``cpu``; any other torch device string is returned unchanged."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
