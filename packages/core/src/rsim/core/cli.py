"""``build_cli``: the one way rsim packages build their command line.

Every package's console script is LightningCLI (``fit``, ``validate``, ``test``, ``predict``, with ``train`` as an
alias of ``fit``) plus the package's own verbs (``encode``, ``compress``, ``predict-map``...). A verb is a callable
that takes the remaining arguments and returns an exit code; it is dispatched before LightningCLI parses anything.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningCLI

Verb = Callable[[list[str]], int | None]
LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")
ALIASES = {"train": "fit"}


class MetricsSummary(Callback):
    """Print the final logged metrics as a table when fitting, validating or testing ends."""

    def _print(self, trainer: Trainer, title: str) -> None:
        if not trainer.is_global_zero:
            return
        from rich.console import Console
        from rich.table import Table

        metrics = {k: v for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        if not metrics:
            return
        table = Table(title=title)
        table.add_column("metric")
        table.add_column("value", justify="right")
        for name in sorted(metrics):
            table.add_row(name, f"{float(metrics[name]):.4f}")
        Console().print(table)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:  # noqa: D102
        self._print(trainer, f"metrics after {trainer.current_epoch} epoch(s)")


class RsimCLI(LightningCLI):
    """LightningCLI with rsim defaults: seed 0, config saved with each run, rich progress bar, metrics table.

    The progress bar and :class:`MetricsSummary` are added to whatever ``trainer.callbacks`` a config lists (unless it
    already has them), so a config with its own callbacks keeps both; ``trainer.enable_progress_bar: false`` removes
    any progress bar, including one the config lists.
    """

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        given = config.get("callbacks") or []
        callbacks = list(given) if isinstance(given, list) else [given]
        if config.get("enable_progress_bar") is False:  # a config listing a bar may still be run without one
            callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
        elif not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(RichProgressBar())
        if not any(isinstance(c, MetricsSummary) for c in callbacks):
            callbacks.append(MetricsSummary())
        return super().instantiate_trainer(**{**kwargs, "callbacks": callbacks})


def _usage(prog: str, verbs: Mapping[str, Verb]) -> str:
    width = max([10, *(len(name) + 1 for name in verbs)])
    lines = [f"usage: {prog} <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}} Lightning {name}" for name in LIGHTNING_SUBCOMMANDS]
    lines.append(f"  {'train':<{width}} alias of fit")
    for name, fn in verbs.items():
        doc = (fn.__doc__ or "").strip().splitlines()
        lines.append(f"  {name:<{width}} {doc[0] if doc else ''}")
    lines.append(f"\nRun '{prog} <command> --help' for the options of a command.")
    return "\n".join(lines)


def build_cli(
    *,
    prog: str,
    model_class: type[LightningModule] | None = None,
    datamodule_class: type[LightningDataModule] | None = None,
    verbs: Mapping[str, Verb] | None = None,
    args: Sequence[str] | None = None,
) -> int:
    """Run a package's command line.

    Args:
        prog: Program name shown in help (the console script name).
        model_class: Base class for ``--model`` (subclass mode; configs use ``class_path``/``init_args``).
        datamodule_class: Base class for ``--data`` (subclass mode).
        verbs: Extra subcommands; ``verbs[name](remaining_args)`` is called instead of LightningCLI.
        args: Arguments without the program name (defaults to ``sys.argv[1:]``).

    Returns:
        Process exit code.
    """
    verbs = dict(verbs or {})
    argv = list(sys.argv[1:] if args is None else args)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage(prog, verbs))
        return 0 if argv else 2
    command = ALIASES.get(argv[0], argv[0])
    if command in verbs:
        code = verbs[command](argv[1:])
        return int(code or 0)
    if command not in LIGHTNING_SUBCOMMANDS:
        print(f"{prog}: unknown command {argv[0]!r}\n\n{_usage(prog, verbs)}", file=sys.stderr)
        return 2
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")  # Lightning's own calls, not the user's
    cli_args: list[str] | None = [command, *argv[1:]]
    if args is None:  # console script: hand LightningCLI the (alias-resolved) sys.argv instead of args=
        sys.argv = [prog, command, *argv[1:]]
        cli_args = None
    RsimCLI(
        model_class=model_class or LightningModule,
        datamodule_class=datamodule_class or LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": prog, "default_env": True},
        args=cli_args,
        auto_configure_optimizers=False,
    )
    return 0


def main(args: Sequence[str] | None = None) -> int:
    """Entry point of the ``rsim`` console script (core verbs: ``encode``)."""
    from rsim.core.data.encode import encode_main

    return build_cli(prog="rsim", verbs={"encode": encode_main}, args=args)


__all__ = ["MetricsSummary", "RichProgressBar", "build_cli", "main"]
