"""What every builder shares: reading feedback with its interactions, the report, the output Dataset."""

from __future__ import annotations

import functools
import gc
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from refeed.store.trl import conversational
from refeed.types import Answer

if TYPE_CHECKING:
    from refeed.store.records import FeedbackView


@dataclass
class BuildReport:
    """What a builder did: rows out, what it dropped and why, contradictions, annotator agreement."""

    builder: str
    rows: int = 0
    by_source: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    contradictions: list[dict] = field(default_factory=list)
    agreement: float | None = None  # share of multi-vote comparisons whose votes all agree

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["by_source"], d["dropped"] = dict(self.by_source), dict(self.dropped)
        return d


def builder(fn: Callable) -> Callable:
    """Run a builder with CPython's cyclic garbage collector paused (and resumed after, if it was on).

    A build keeps millions of small containers alive until its Dataset is made (read rows, votes, output
    rows), and each full collection walks all of them again: a third of the CPU time of a 1M-row pair
    build. Builders make no reference cycles, so nothing is left for the collector to find; reference
    counting still frees everything as usual. The pause is process-wide, so other threads' cycles wait
    until the build ends.
    """

    @functools.wraps(fn)
    def run(*args, **kwargs):
        was_on = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if was_on:
                gc.enable()

    return run


def load(
    store, kinds: Iterable[str], project: str | None = None
) -> tuple[list[FeedbackView], dict[str, Answer]]:
    """Active feedback of ``kinds``, oldest first, and every answer it names (``refeed.types.Answer``).

    ``Store.builder_input``: the fields of ``Feedback`` builders use, read set-wise (a few queries, not
    pages of full records), so a million rows take seconds. Payload dicts may be shared: read them only.
    """
    return store.builder_input(kinds, project=project)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def to_dataset(rows: list[dict], report: BuildReport, columns: list[str]):
    """An HF Dataset with ``columns`` (TRL names) plus ``source_ids``; the report rides in ``info.description``.

    Rows whose prompt is a chat get their answers as assistant message lists (``refeed.store.trl.conversational``): TRL
    reads a row as conversational in every column or fails.
    """
    from datasets import Dataset

    report.rows = len(rows)
    data = {c: [r[c] for r in rows] for c in [*columns, "source_ids"]}
    data = conversational(data)
    ds = Dataset.from_dict(data)
    ds.info.description = json.dumps(report.to_dict())
    return ds


def build_report(ds) -> dict[str, Any]:
    """The BuildReport (as a dict) of a Dataset a builder returned."""
    return json.loads(ds.info.description or "{}")
