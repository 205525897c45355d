"""Shared CLI plumbing: config loading with clear errors, rich progress for pipeline stages."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table

from refeed.config import ConfigError, load

console = Console(stderr=True)


def load_config(cls, path, overrides):
    """``config.load`` that turns a bad key or value into a one-line CLI error (exit code 2)."""
    try:
        return load(cls, path, list(overrides))
    except (ConfigError, ValueError) as e:
        raise click.UsageError(str(e)) from None


@contextlib.contextmanager
def stage_progress(enabled: bool = True, out: Console | None = None) -> Iterator:
    """A callback ``report(stage)`` that drives one rich progress bar per pipeline stage.

    Columns: name, bar, done/total, elapsed, ETA, a few metrics. The bar shrinks first, so at 80 columns the
    counts and times stay whole (``MofNCompleteColumn`` and the times never wrap or ellipsize). Third-party
    bars (transformers, datasets) are off while ours run."""
    if not enabled:
        yield lambda stage: None
        return
    from refeed.pipelines.quiet import quiet_third_party

    whole = lambda: Column(no_wrap=True, overflow="ignore")  # noqa: E731 - never cut a count or a time
    cols = [TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True, min_width=11, max_width=14)),
            BarColumn(bar_width=None, table_column=Column(min_width=4, ratio=1)),
            MofNCompleteColumn(table_column=whole()), TimeElapsedColumn(table_column=whole()),
            TextColumn("eta", table_column=whole()), TimeRemainingColumn(table_column=whole()),
            TextColumn("{task.fields[info]}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1))]
    with quiet_third_party(), Progress(*cols, console=out or console, transient=False, expand=True) as bar:
        tasks: dict[str, int] = {}

        def report(stage) -> None:
            if stage.name not in tasks:
                tasks[stage.name] = bar.add_task(stage.name, total=max(stage.total, 1), info="")
            shown = {k: v for k, v in stage.info.items() if isinstance(v, int | float) and k in _SHOWN}
            info = "  ".join(f"{k}={fmt_number(v)}" for k, v in shown.items())
            bar.update(tasks[stage.name], completed=stage.done, total=max(stage.total, 1), info=info)

        yield report


def fmt_number(v: float | int) -> str:
    """Integers (and integral floats such as a row count) as integers, never 1.74e+03; others to 3 digits."""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        return str(int(v))
    return f"{v:.3g}" if 1e-3 <= abs(v) < 1e4 else f"{v:.3e}"


def print_rows(title: str, rows: list[tuple[str, ...]]) -> None:
    """A rich table: ``rows[0]`` is the header, the rest are right-aligned cells."""
    table = Table(title=title)
    for col in rows[0]:
        table.add_column(col, justify="right")
    for r in rows[1:]:
        table.add_row(*r)
    console.print(table)


_SHOWN = {"loss", "dev_accuracy", "accuracy", "pairs", "thumbs_up", "rewards/margin", "rewards/accuracy"}
