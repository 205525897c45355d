"""What a built-in task is: seeded splits of chat prompts, and a verifier that knows the answer."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from refeed.tasks.diagnosis import Diagnosis
from refeed.types import Example, Verdict


class Split(StrEnum):
    TRAIN = "train"  # prompts the model is trained on (demonstrations, sampled answers, feedback)
    DEV = "dev"  # for decisions during training (early stopping); never reported as the result
    TEST = "test"  # held out: the accuracy refeed reports


@dataclass(frozen=True)
class SplitSizes:
    train: int = 2000
    dev: int = 200
    test: int = 300


class Task(Protocol):
    name: str

    def examples(self, split: Split | str) -> list[Example]: ...

    def verify(self, example: Example, completion: str) -> Verdict: ...

    def diagnose(self, example: Example, completion: str) -> Diagnosis:
        """What is wrong with ``completion`` (spans, closeness, critique sentences); see ``diagnosis``."""
        ...


def disjoint_splits(keys: list, sizes: SplitSizes, seed: int, what: str = "the task") -> dict[Split, list]:
    """Shuffle unique ``keys`` with ``seed`` and cut them into train / dev / test with no overlap."""
    keys = list(dict.fromkeys(keys))  # unique, order kept before the shuffle
    need = sizes.train + sizes.dev + sizes.test
    if len(keys) < need:
        raise ValueError(f"{what} has {len(keys)} distinct prompts, fewer than the {need} the splits ask for "
                         f"(train {sizes.train} + dev {sizes.dev} + test {sizes.test}); lower the sizes or add "
                         "harder levels")
    random.Random(seed).shuffle(keys)
    return {
        Split.TEST: keys[: sizes.test],
        Split.DEV: keys[sizes.test : sizes.test + sizes.dev],
        Split.TRAIN: keys[sizes.test + sizes.dev : need],
    }


def as_split(split: Split | str) -> Split:
    try:
        return Split(split)
    except ValueError:
        raise ValueError(f"unknown split '{split}'; use one of {', '.join(s.value for s in Split)}") from None


def random_words(seed: int, lengths: tuple[int, ...], n: int) -> list[str]:
    """``n`` random lowercase words, each of a length drawn from ``lengths``, seeded: the candidate prompts of
    the word tasks (reverse, sort), split afterwards by ``disjoint_splits``."""
    rng = random.Random(seed)
    return ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.choice(lengths))) for _ in range(n)]
