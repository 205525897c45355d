"""Reverse a word: a non-math task with difficulty = word length.

"Reverse the word: table" -> "elbat". The verifier compares the first word of the completion
with the reversed word; partial credit (``score``) is the fraction of leading characters right,
which later issues use for graded feedback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from refeed.tasks.base import Split, SplitSizes, as_split, disjoint_splits, random_words
from refeed.tasks.diagnosis import PHRASES, Diagnosis, join_words, merge_positions
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
        total = self.sizes.train + self.sizes.dev + self.sizes.test
        words = random_words(self.seed, self.levels, 2 * total)
        keyed = disjoint_splits(words, self.sizes, self.seed, what=f"reverse (levels {list(self.levels)})")
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
        wrong = () if got == expected else self.diagnose(example, completion).wrong
        return Verdict(correct=got == expected, expected=expected, extracted=got, score=1.0 if got == expected else score,
                       where=wrong[0] if wrong else None)

    def diagnose(self, example: Example, completion: str) -> Diagnosis:
        """Which letters of the first word are wrong, swapped or missing, as a ``Diagnosis`` whose critique
        names 1-based letter positions ("letters 3-4 are in the wrong order"), never the letters."""
        words = completion.strip().split()
        if not words:
            return Diagnosis(False, 0.0, (), (PHRASES["no_answer"].format(what="word"),))
        raw = words[0]
        got = raw.strip(".,!?\"'")
        want, word = example.answer, example.answer[::-1]
        if got == want:
            return Diagnosis(True, 1.0)
        if not got:
            at = completion.index(raw)
            return Diagnosis(False, 0.0, ((at, at + len(raw)),), (PHRASES["no_answer"].format(what="word"),))
        start = completion.index(raw) + raw.index(got[0])
        phrases, positions = [], []
        if got == word and len(word) > 1:
            phrases.append(PHRASES["not_reversed"])
            positions += [start + i for i in range(len(got)) if got[i] != want[i]]
        else:
            if len(got) != len(want):
                phrases.append(PHRASES["length"].format(got=len(got), need=len(want)))
                positions += range(start + len(want), start + len(got))
            n = min(len(got), len(want))
            bad = [i for i in range(n) if got[i] != want[i]]
            swaps = [i for i in bad if i + 1 < n and got[i] == want[i + 1] and got[i + 1] == want[i] and i + 1 in bad]
            swapped = {j for i in swaps for j in (i, i + 1)}
            phrases += [PHRASES["swapped"].format(a=i + 1, b=i + 2) for i in swaps]
            rest = [i for i in bad if i not in swapped]
            if rest:
                one = len(rest) == 1
                phrases.append(PHRASES["letters"].format(letters_word="Letter" if one else "Letters",
                                                         letters=join_words([str(i + 1) for i in rest]),
                                                         verb="is" if one else "are"))
            positions += [start + i for i in bad]
        right = sum(a == b for a, b in zip(got, want, strict=False))
        wrong = merge_positions(positions) or ((start, start + len(got)),)
        return Diagnosis(False, right / max(len(got), len(want)), wrong, tuple(phrases))
