"""A simulated user who knows the answer: turns verifier verdicts into feedback records.

This is the controlled setting of the Feedback Friction paper: the oracle's feedback is exactly as
good as the verifier, so what a model learns from it can be measured on held-out prompts.

    ints = [Interaction(list(ex.messages), text, model="base") for text in samples]
    fb = thumbs(task, ex, ints) + preferences(task, ex, ints)

Records are ``refeed.types.Feedback`` rows with ``source=SIMULATED``, the shape the store keeps.
"""

from __future__ import annotations

import itertools
import random

from refeed.tasks.base import Task
from refeed.types import Example, Feedback, FeedbackKind, Interaction, Source

ORACLE = "oracle"


def outcomes(task: Task, example: Example, interactions: list[Interaction]) -> list[Feedback]:
    """One verifier outcome (pass / fail, score) per interaction."""
    out = []
    for it in interactions:
        v = task.verify(example, it.completion)
        out.append(
            Feedback(
                kind=FeedbackKind.OUTCOME,
                interaction_id=it.id,
                score=v.score,
                label="pass" if v.correct else "fail",
                payload={"verifier": task.name, "expected": v.expected, "extracted": v.extracted},
                source=Source.SIMULATED,
                author=ORACLE,
            )
        )
    return out


def thumbs(task: Task, example: Example, interactions: list[Interaction]) -> list[Feedback]:
    """Thumbs up (1) for a correct answer, down (0) otherwise: a rating on the 2-point scale (0, 1)."""
    return [
        Feedback(
            kind=FeedbackKind.RATING,
            interaction_id=it.id,
            score=1.0 if task.verify(example, it.completion).correct else 0.0,
            payload={"scale": [0, 1]},
            source=Source.SIMULATED,
            author=ORACLE,
        )
        for it in interactions
    ]


def preferences(
    task: Task, example: Example, interactions: list[Interaction], max_pairs: int | None = 1, seed: int = 0
) -> list[Feedback]:
    """Preferences between samples of one prompt: correct beats incorrect; ties (both right or both
    wrong) are dropped. At most ``max_pairs`` per prompt (None: every correct x incorrect pair)."""
    verdicts = [(it, task.verify(example, it.completion)) for it in interactions]
    good = [it for it, v in verdicts if v.correct]
    bad = [it for it, v in verdicts if not v.correct]
    pairs = list(itertools.product(good, bad))
    random.Random(f"{seed}-{example.id}").shuffle(pairs)
    if max_pairs is not None:
        pairs = pairs[:max_pairs]
    return [
        Feedback(
            kind=FeedbackKind.PREFERENCE,
            label="a",
            targets=[
                {"interaction_id": chosen.id, "role": "chosen", "position": 0},
                {"interaction_id": rejected.id, "role": "rejected", "position": 1},
            ],
            source=Source.SIMULATED,
            author=ORACLE,
        )
        for chosen, rejected in pairs
    ]
