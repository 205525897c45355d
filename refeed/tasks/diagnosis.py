"""What a verifier knows about a wrong answer, as data: which characters are wrong, why, and how close it is.

Each built-in task's ``diagnose(example, completion)`` returns a ``Diagnosis``; the simulated user
(``refeed.tasks.oracle``) turns it into every feedback kind (1-5 ratings, critiques, spans, ...).
Critiques come from a closed grammar of ``Phrase`` templates that name the error and never the answer,
as the ground-truth feedback of Feedback Friction does (METHODS.md section 12), so a test can parse every
critique back and check that no gold answer leaks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The closed grammar: every critique sentence is one of these, with {n} / {a} / {b} / {places} / {letters}
# filled by place names ("tens", "units and tens") or 1-based letter positions, {way} by "high" or "low" (which
# way a digit is off), never by answer digits.
PHRASES = {
    "no_answer": "The answer must be a single {what}.",
    "sign": "The sign of the answer is wrong.",
    "too_many_digits": "The answer has too many digits.",
    "too_few_digits": "The answer has too few digits.",
    "digits": "The {places} {digit_word} too {way}.",
    "not_reversed": "The letters are in the original order, not reversed.",
    "length": "The answer has {got} letters; it needs {need}.",
    "swapped": "Letters {a}-{b} are in the wrong order.",
    "letters": "{letters_word} {letters} {verb} wrong.",
    "out_of_order": "Letters {a}-{b} are out of order.",
    "more_out_of_order": "Later letters are out of order too.",
    "not_in_word": "{letters_word} {letters} {verb} not in the word.",
}


@dataclass(frozen=True)
class Diagnosis:
    """``correct``; ``closeness`` in [0, 1] (1 = right); ``wrong`` = (start, end) code-point spans of the
    completion that are wrong; ``phrases`` = the critique sentences, from ``PHRASES``."""

    correct: bool
    closeness: float
    wrong: tuple[tuple[int, int], ...] = ()
    phrases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def critique(self) -> str | None:
        return None if self.correct else " ".join(self.phrases)


def join_words(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def merge_positions(positions: list[int]) -> tuple[tuple[int, int], ...]:
    """Sorted character positions -> maximal (start, end) runs."""
    runs: list[list[int]] = []
    for p in sorted(set(positions)):
        if runs and runs[-1][1] == p:
            runs[-1][1] = p + 1
        else:
            runs.append([p, p + 1])
    return tuple((a, b) for a, b in runs)
