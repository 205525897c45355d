"""Model x task split -> scored records and accuracy (greedy decoding, the task's verifier)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from refeed.models.generate import sample
from refeed.tasks.base import Split, Task
from refeed.types import Example


@dataclass
class EvalResult:
    accuracy: float
    n: int
    by_difficulty: dict[int, float] = field(default_factory=dict)
    records: list[dict] = field(default_factory=list)  # one per example: id, completion, correct, expected


def evaluate(
    model,
    tokenizer,
    task: Task,
    split: Split | str = Split.TEST,
    examples: list[Example] | None = None,
    max_new_tokens: int = 16,
    batch_size: int = 128,
) -> EvalResult:
    """Greedy-decode every example of ``split`` (or the given ``examples``) and verify it."""
    examples = examples if examples is not None else task.examples(split)
    if not examples:
        raise ValueError("nothing to evaluate: the split is empty")
    outs = sample(model, tokenizer, [e.messages for e in examples], temperature=0, max_new_tokens=max_new_tokens, batch_size=batch_size)
    records, per_level = [], defaultdict(list)
    for ex, (text,) in zip(examples, outs, strict=True):
        v = task.verify(ex, text)
        records.append({"id": ex.id, "completion": text, "correct": v.correct, "expected": v.expected})
        per_level[ex.difficulty].append(v.correct)
    acc = sum(r["correct"] for r in records) / len(records)
    by_diff = {d: sum(v) / len(v) for d, v in sorted(per_level.items())}
    return EvalResult(accuracy=acc, n=len(records), by_difficulty=by_diff, records=records)
