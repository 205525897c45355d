"""Reverse a word: a non-math task with difficulty = word length.

"Reverse the word: table" -> "elbat". The verifier compares the first word of the completion
with the reversed word; partial credit (``score``) is the fraction of leading characters right,
which later issues use for graded feedback.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from functools import cached_property

from refeed.tasks.base import Split, SplitSizes, as_split, disjoint_splits
from refeed.types import Example, Verdict


@dataclass(frozen=True)
class Reverse:
    levels: tuple[int, ...] = (3, 4, 5, 6)  # word lengths
    seed: int = 0
    sizes: SplitSizes = field(default_factory=SplitSizes)
    name: str = "reverse"

    def __post_init__(self) -> None:
        if not self.levels or any(not 2 <= n <= 12 for n in self.levels):
            raise ValueError(f"reverse levels must be word lengths in 2..12, got {self.levels}")

    @cached_property
    def _splits(self) -> dict[Split, list[Example]]:
        rng = random.Random(self.seed)
        total = self.sizes.train + self.sizes.dev + self.sizes.test
        words = [
            "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.choice(self.levels)))
            for _ in range(2 * total)
        ]
        keyed = disjoint_splits(words, self.sizes, self.seed)
        return {s: [self._example(w) for w in ws] for s, ws in keyed.items()}

    def _example(self, word: str) -> Example:
        return Example(
            id=f"{self.name}-{word}",
            task=self.name,
            messages=({"role": "user", "content": f"Reverse the word: {word}"},),
            answer=word[::-1],
            difficulty=len(word),
        )

    def examples(self, split: Split | str) -> list[Example]:
        return list(self._splits[as_split(split)])

    def verify(self, example: Example, completion: str) -> Verdict:
        words = completion.strip().split()
        got = words[0].strip(".,!?\"'") if words else None
        expected = example.answer
        prefix = 0
        for a, b in zip(got or "", expected, strict=False):
            if a != b:
                break
            prefix += 1
        score = prefix / len(expected) if got and len(got) == len(expected) else prefix / max(len(expected), len(got or ""))
        return Verdict(correct=got == expected, expected=expected, extracted=got, score=1.0 if got == expected else score)
