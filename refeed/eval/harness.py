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
    records: list[dict] = field(default_factory=list)  # one per example: id, prompt, completion, correct, expected
    n_by_difficulty: dict[int, int] = field(default_factory=dict)


def evaluate(
    model,
    tokenizer,
    task: Task,
    split: Split | str = Split.TEST,
    examples: list[Example] | None = None,
    max_new_tokens: int = 16,
    batch_size: int = 128,
    tick=None,
) -> EvalResult:
    """Greedy-decode every example of ``split`` (or the given ``examples``) and verify it.

    ``tick(done, total)`` is called as prompts finish (progress bars)."""
    examples = examples if examples is not None else task.examples(split)
    if not examples:
        raise ValueError("nothing to evaluate: the split is empty")
    done = [0]

    def progress(n: int) -> None:
        done[0] += n
        tick(done[0], len(examples))

    if tick:
        tick(0, len(examples))
    outs = sample(model, tokenizer, [e.messages for e in examples], temperature=0, max_new_tokens=max_new_tokens,
                  batch_size=batch_size, progress=progress if tick else None)
    records, per_level = [], defaultdict(list)
    for ex, (text,) in zip(examples, outs, strict=True):
        v = task.verify(ex, text)
        records.append({"id": ex.id, "prompt": ex.messages[-1]["content"], "completion": text, "correct": v.correct,
                        "expected": v.expected, "difficulty": ex.difficulty})
        per_level[ex.difficulty].append(v.correct)
    acc = sum(r["correct"] for r in records) / len(records)
    by_diff = {d: sum(v) / len(v) for d, v in sorted(per_level.items())}
    n_by = {d: len(v) for d, v in sorted(per_level.items())}
    return EvalResult(accuracy=acc, n=len(records), by_difficulty=by_diff, records=records, n_by_difficulty=n_by)
