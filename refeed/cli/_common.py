"""Shared CLI plumbing: config loading with clear errors, rich progress for pipeline stages."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from refeed.config import ConfigError, load

console = Console(stderr=True)


def load_config(cls, path, overrides):
    """``config.load`` that turns a bad key or value into a one-line CLI error (exit code 2)."""
    try:
        return load(cls, path, list(overrides))
    except (ConfigError, ValueError) as e:
        raise click.UsageError(str(e)) from None


@contextlib.contextmanager
def stage_progress(enabled: bool = True) -> Iterator:
    """A callback ``report(stage)`` that drives one rich progress bar per pipeline stage."""
    if not enabled:
        yield lambda stage: None
        return
    cols = [TextColumn("[bold]{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("{task.fields[info]}")]
    with Progress(*cols, console=console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def report(stage) -> None:
            if stage.name not in tasks:
                tasks[stage.name] = bar.add_task(stage.name, total=max(stage.total, 1), info="")
            shown = {k: v for k, v in stage.info.items() if isinstance(v, int | float) and k in _SHOWN}
            info = "  ".join(f"{k}={v:.3g}" for k, v in shown.items())
            bar.update(tasks[stage.name], completed=stage.done, total=max(stage.total, 1), info=info)

        yield report


_SHOWN = {"loss", "dev_accuracy", "accuracy", "pairs", "thumbs_up", "rewards/margin", "rewards/accuracy"}
