"""Shared CLI plumbing: config loading with clear errors, rich progress for pipeline stages."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from refeed.config import ConfigError, load

console = Console(stderr=True)


# One spelling for the model across `refeed demo`, `train` and `serve`: --model PATH.
def model_option(help: str = "a model directory (written by save_pretrained) or hub id; default: the built-in "
                 "tiny model, pretrained and cached"):
    return click.option("--model", "model_path", default=None, metavar="PATH", help=help)


def with_model(overrides: tuple[str, ...], model_path: str | None, key: str,
               deprecated: str | None = None) -> tuple[str, ...]:
    """``overrides`` with ``--model`` as the config field ``key``; an override spelled ``deprecated=``
    still works, with a warning that names --model."""
    if deprecated:
        for word in overrides:
            if word.startswith(f"{deprecated}="):
                console.print(f"[yellow]warning:[/] `{word}` is deprecated; use --model {word.partition('=')[2]} "
                              "(the same option on refeed demo, train and serve)")
    return (*overrides, f"{key}={model_path}") if model_path else overrides


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
