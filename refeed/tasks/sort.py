"""Sort the letters of a word: a multi-step task whose answer is several tokens and whose errors are local.

"Sort the letters: qdmat" -> "admqt". Difficulty = word length. Checking is easier than solving: the
verifier compares letter by letter, so a wrong answer has a location (the first letter that is wrong, and
every wrong letter as a span), a partial score (the fraction of letters in the right place), and a
critique that says where the order breaks ("Letters 3-4 are out of order.") without giving the answer.
Letters may repeat, so a sorted word can hold runs ("aabt").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from refeed.tasks.base import Split, SplitSizes, as_split, disjoint_splits, random_words
from refeed.tasks.diagnosis import PHRASES, Diagnosis, join_words, merge_positions
from refeed.types import Example, Verdict

PROMPT = "Sort the letters: {word}"


def _first_word(completion: str) -> tuple[str, int] | None:
    """The completion's first word without surrounding punctuation, and its offset; None when empty."""
    words = completion.strip().split()
    if not words:
        return None
    raw = words[0]
    got = raw.strip(".,!?\"'")
    at = completion.index(raw)
    return got, at + (raw.index(got[0]) if got else 0)


@dataclass(frozen=True)
class Sort:
    levels: tuple[int, ...] = (4, 5, 6, 7)  # word lengths
    seed: int = 0
    sizes: SplitSizes = field(default_factory=lambda: SplitSizes(train=4000, dev=200, test=1000))
    name: str = "sort"

    def __post_init__(self) -> None:
        if not self.levels or any(not 2 <= n <= 12 for n in self.levels):
            raise ValueError(f"sort levels must be word lengths in 2..12, got {self.levels}")

    @cached_property
    def _splits(self) -> dict[Split, list[Example]]:
        total = self.sizes.train + self.sizes.dev + self.sizes.test
        words = random_words(self.seed, self.levels, 2 * total)
        # One prompt per multiset of letters would be stricter; a word and its anagram are distinct prompts
        # with one answer, like two arithmetic questions with the same sum.
        keyed = disjoint_splits(words, self.sizes, self.seed, what=f"sort (levels {list(self.levels)})")
        return {s: [self._example(w) for w in ws] for s, ws in keyed.items()}

    def _example(self, word: str) -> Example:
        return Example(
            id=f"{self.name}-{word}",
            task=self.name,
            messages=({"role": "user", "content": PROMPT.format(word=word)},),
            answer="".join(sorted(word)),
            difficulty=len(word),
        )

    def examples(self, split: Split | str) -> list[Example]:
        return list(self._splits[as_split(split)])

    def verify(self, example: Example, completion: str) -> Verdict:
        """Correct when the first word is the sorted word; ``score`` = the fraction of letters in place;
        ``where`` = the span of the first wrong letter (None when correct)."""
        d = self.diagnose(example, completion)
        first = _first_word(completion)
        return Verdict(correct=d.correct, expected=example.answer, extracted=first[0] if first else None,
                       score=d.closeness, where=d.wrong[0] if d.wrong and not d.correct else None)

    def diagnose(self, example: Example, completion: str) -> Diagnosis:
        """Letters out of order (adjacent pairs that descend), letters that are not the word's, and a wrong
        length, as a ``Diagnosis`` whose critique names 1-based letter positions, never the letters."""
        first = _first_word(completion)
        if first is None:
            return Diagnosis(False, 0.0, (), (PHRASES["no_answer"].format(what="word"),))
        got, start = first
        want = example.answer
        if got == want:
            return Diagnosis(True, 1.0)
        if not got:
            return Diagnosis(False, 0.0, ((start, start + 1),), (PHRASES["no_answer"].format(what="word"),))
        phrases, positions = [], []
        if len(got) != len(want):
            phrases.append(PHRASES["length"].format(got=len(got), need=len(want)))
            positions += range(start + len(want), start + len(got))
        # Letters that are not the word's: beyond what the word holds of that letter, left to right.
        left = {c: want.count(c) for c in set(want)}
        foreign = []
        for i, c in enumerate(got):
            if left.get(c, 0) > 0:
                left[c] -= 1
            else:
                foreign.append(i)
        if foreign:
            one = len(foreign) == 1
            phrases.append(PHRASES["not_in_word"].format(letters_word="Letter" if one else "Letters",
                                                         letters=join_words([str(i + 1) for i in foreign]),
                                                         verb="is" if one else "are"))
        descents = [i for i in range(len(got) - 1) if got[i] > got[i + 1]]
        phrases += [PHRASES["out_of_order"].format(a=i + 1, b=i + 2) for i in descents[:3]]
        if len(descents) > 3:
            phrases.append(PHRASES["more_out_of_order"])
        n = min(len(got), len(want))
        bad = [i for i in range(n) if got[i] != want[i]]
        positions += [start + i for i in bad]
        if not bad and len(got) < len(want):  # a prefix of the answer: it goes wrong where it stops
            positions.append(start + len(got) - 1)
        right = n - len(bad)
        wrong = merge_positions(positions) or ((start, start + len(got)),)
        return Diagnosis(False, right / max(len(got), len(want)), wrong, tuple(phrases))
