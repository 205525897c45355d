"""What every builder shares: reading feedback with its interactions, the report, the output Dataset."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from refeed.types import Answer, Feedback


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


def load(
    store, kinds: Iterable[str], project: str | None = None
) -> tuple[list[Feedback], dict[str, Answer]]:
    """Active feedback of ``kinds`` and every answer it names (``refeed.types.Answer``), read page by page."""
    fbs = list(store.iter_feedback(kinds=list(kinds), project=project, page_size=5000))
    ids = set()
    for fb in fbs:
        if fb.interaction_id:
            ids.add(fb.interaction_id)
        ids.update(t["interaction_id"] for t in fb.targets)
    return fbs, store.answers(ids, project=project)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def to_dataset(rows: list[dict], report: BuildReport, columns: list[str]):
    """An HF Dataset with ``columns`` (TRL names) plus ``source_ids``; the report rides in ``info.description``."""
    from datasets import Dataset

    report.rows = len(rows)
    data = {c: [r[c] for r in rows] for c in [*columns, "source_ids"]}
    ds = Dataset.from_dict(data)
    ds.info.description = json.dumps(report.to_dict())
    return ds


def build_report(ds) -> dict[str, Any]:
    """The BuildReport (as a dict) of a Dataset a builder returned."""
    return json.loads(ds.info.description or "{}")
