"""Multi-digit addition and subtraction with difficulty levels.

Difficulty ``d`` means operands of up to ``d`` digits. Prompts are chat messages
("What is 47+385?"); the answer is the integer. The verifier reads the first integer in the
completion, so "432" and "432." both count, "The answer is 432" too.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from functools import cached_property

from refeed.tasks.base import Split, SplitSizes, as_split, disjoint_splits
from refeed.tasks.diagnosis import PHRASES, Diagnosis, join_words, merge_positions
from refeed.types import Example, Verdict

_INT = re.compile(r"-?\d+")
PLACES = ("units", "tens", "hundreds", "thousands", "ten-thousands", "hundred-thousands", "millions", "ten-millions")


@dataclass(frozen=True)
class Arithmetic:
    """``levels`` are the difficulties mixed into every split (1 = one-digit operands)."""

    levels: tuple[int, ...] = (1, 2, 3)
    ops: str = "+-"
    seed: int = 0
    sizes: SplitSizes = field(default_factory=SplitSizes)
    name: str = "arithmetic"

    def __post_init__(self) -> None:
        if not self.levels or any(not 1 <= d <= 6 for d in self.levels):
            raise ValueError(f"arithmetic levels must be digits counts in 1..6, got {self.levels}")
        if not self.ops or set(self.ops) - set("+-"):
            raise ValueError(f"arithmetic ops must be made of '+' and '-', got '{self.ops}'")

    def _candidates(self) -> list[tuple[int, int, str, int]]:
        rng = random.Random(self.seed)
        total = self.sizes.train + self.sizes.dev + self.sizes.test
        per_level = 3 * total // len(self.levels) + 10  # oversample; duplicates are dropped
        out = []
        for d in self.levels:
            lo, hi = (0 if d == 1 else 10 ** (d - 1)), 10**d - 1
            for _ in range(per_level):
                a, b = rng.randint(lo, hi), rng.randint(0, hi)
                out.append((a, b, rng.choice(self.ops), d))
        return out

    @cached_property
    def _splits(self) -> dict[Split, list[Example]]:
        cands = {(a, b, op): d for a, b, op, d in self._candidates()}
        keyed = disjoint_splits(list(cands), self.sizes, self.seed, what=f"arithmetic (levels {list(self.levels)})")
        return {s: [self._example(a, b, op, cands[(a, b, op)]) for a, b, op in keys] for s, keys in keyed.items()}

    def _example(self, a: int, b: int, op: str, d: int) -> Example:
        answer = a + b if op == "+" else a - b
        q = f"What is {a}{op}{b}?"
        return Example(
            id=f"{self.name}-{a}{op}{b}",
            task=self.name,
            messages=({"role": "user", "content": q},),
            answer=str(answer),
            difficulty=d,
        )

    def examples(self, split: Split | str) -> list[Example]:
        return list(self._splits[as_split(split)])

    def verify(self, example: Example, completion: str) -> Verdict:
        m = _INT.search(completion)
        got = m.group(0) if m else None
        ok = got is not None and int(got) == int(example.answer)
        wrong = () if ok else self.diagnose(example, completion).wrong
        return Verdict(correct=ok, expected=example.answer, extracted=got, score=float(ok),
                       where=wrong[0] if wrong else None)

    def diagnose(self, example: Example, completion: str) -> Diagnosis:
        """Which digits of the answer are wrong (aligned from the units), its sign and length, as a
        ``Diagnosis`` whose critique names digit places and which way they are off ("the tens digit is too
        high"), never the digits. Without the direction, a critique told the small base no more than "try
        again" did (uptake +0.005 [-0.011, +0.022] on TEST): it had to re-solve the digit it got wrong."""
        m = _INT.search(completion)
        if m is None:
            wrong = ((0, len(completion)),) if completion.strip() else ()
            return Diagnosis(False, 0.0, wrong, (PHRASES["no_answer"].format(what="integer"),))
        got, want = m.group(0), example.answer
        if int(got) == int(want):
            return Diagnosis(True, 1.0)
        phrases, positions = [], []
        g_neg, w_neg = got.startswith("-"), want.startswith("-")
        gd, wd = got.lstrip("-").lstrip("0") or "0", want.lstrip("-")
        first = m.start() + (len(got) - len(gd))  # offset of gd's first digit in the completion
        if g_neg != w_neg:
            phrases.append(PHRASES["sign"])
            positions.append(m.start()) if g_neg else None
        if len(gd) != len(wd):
            phrases.append(PHRASES["too_many_digits" if len(gd) > len(wd) else "too_few_digits"])
        bad = [k for k in range(min(len(gd), len(wd))) if gd[-1 - k] != wd[-1 - k]]  # k = place (0 = units)
        for way in ("high", "low"):  # which way each wrong digit is off, as a teacher marks a sum
            ks = [k for k in bad if (gd[-1 - k] > wd[-1 - k]) == (way == "high")]
            if ks:
                phrases.append(PHRASES["digits"].format(places=join_words([PLACES[k] for k in ks]), way=way,
                                                        digit_word="digit is" if len(ks) == 1 else "digits are"))
        positions += [first + len(gd) - 1 - k for k in bad]
        positions += range(first, first + max(0, len(gd) - len(wd)))  # digits it should not have
        right = min(len(gd), len(wd)) - len(bad)
        closeness = right / max(len(gd), len(wd)) * (0.5 if g_neg != w_neg else 1.0)
        wrong = merge_positions(positions) or ((m.start(), m.end()),)
        return Diagnosis(False, closeness, wrong, tuple(phrases))
