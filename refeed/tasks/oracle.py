"""A simulated user who knows the answer: every feedback kind, made from what the task's verifier knows.

This is the controlled setting of the Feedback Friction paper (METHODS.md section 12): the oracle's feedback
is exactly as good as the verifier, so what a model learns from it can be measured on held-out prompts.
Torch-free, and the one oracle that multi-turn and memory reuse (ACCEPTANCE.md, "Shared pieces").

Single answers, plain values:

    grade(task, ex, "1188")       -> 4          # 1-5 by closeness; 5 only when correct
    critique(task, ex, "1188")    -> "The tens digit is too high." (None when correct; never the answer)
    edit(task, ex, "1188")        -> "1178"     # the corrected answer (None when correct)
    spans(task, ex, "1188")       -> [{"start": 2, "end": 3, "category": "factual_error", "severity": 2}]
    followup(task, ex, "1188")    -> ("No, that's wrong.", "negative")

Groups of answers to one prompt, as ``Store.write_batch`` items (``{"type": "feedback", "target": ..., "kind":
..., **fields}``): the very calls a client makes through the SDK, so the store validates them and the builders
see simulated feedback exactly as they see real feedback:

    items = judge(task, ex, interactions, kinds=("rating", "ranking", "critique"), seed=0)
    store.write_batch([*interactions, *items])

Implicit signals follow CausalRM's setting (METHODS.md section 14): a reaction is observed with a logged
propensity that depends on how strongly the user feels (extreme grades are reacted to more), and the observed
polarity is the truth flipped at rates ``e01`` / ``e10``. Principles carry a scope (``applies when`` /
``not when``) that code can check (``Rule``), so C3PO's in-scope / near-scope / out-of-scope rows and their
adherence can be made and measured on the tasks.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from refeed.tasks.base import Task
from refeed.types import Example, Interaction

ORACLE = "oracle"
SOURCE = "simulated"
# Kinds judge() makes from a group of answers; "principle" is project-level (see ``principle_items``).
KINDS = ("outcome", "thumbs", "rating", "preference", "ranking", "critique", "edit", "span", "retry",
         "followup", "signal")
POSITIVE_FOLLOWUPS = ("Thanks!", "Great, thank you.")
NEGATIVE_FOLLOWUPS = ("No, that's wrong.", "That is not right.")
TRY_AGAIN = "That is not right. Try again."  # unary feedback: the "try again" between turns (UFO)
SPAN_CATEGORY = "factual_error"  # the fine-grained recipe's second head (factual_error|unverifiable|...)


# --- one answer -------------------------------------------------------------------------------------


def grade(task: Task, example: Example, completion: str) -> int:
    """A 1-5 rating graded by closeness: 5 = correct, 1 + round(3 * closeness) otherwise (1..4)."""
    d = task.diagnose(example, completion)
    return 5 if d.correct else 1 + round(3 * d.closeness)


def critique(task: Task, example: Example, completion: str) -> str | None:
    """Ground-truth feedback that names the error without giving the answer (None when correct).

    Sentences come from the closed grammar ``refeed.tasks.diagnosis.PHRASES``: digit places for arithmetic
    ("The tens digit is too high."), letter positions for reverse ("Letters 3-4 are in the wrong order.") and
    sort ("Letters 3-4 are out of order.")."""
    return task.diagnose(example, completion).critique


def edit(task: Task, example: Example, completion: str) -> str | None:
    """The corrected answer, as a user who fixes it would write it (None when already correct)."""
    return None if task.verify(example, completion).correct else example.answer


def spans(task: Task, example: Example, completion: str) -> list[dict]:
    """Character spans (code points, end exclusive) over the wrong characters; [] when correct."""
    return [{"start": a, "end": b, "category": SPAN_CATEGORY, "severity": 2}
            for a, b in task.diagnose(example, completion).wrong]


def followup(task: Task, example: Example, completion: str, seed: int = 0) -> tuple[str, str]:
    """The user's next message and its label: thanks for a correct answer, "no, that's wrong" otherwise."""
    ok = task.verify(example, completion).correct
    texts = POSITIVE_FOLLOWUPS if ok else NEGATIVE_FOLLOWUPS
    return random.Random(f"{seed}-{example.id}-{completion}").choice(texts), "positive" if ok else "negative"


# --- groups of answers, as SDK items -------------------------------------------------------------------


def _item(target: str | None, kind: str, **fields) -> dict:
    return {"type": "feedback", "target": target, "kind": kind, "source": SOURCE, "author": ORACLE, **fields}


def outcomes(task: Task, example: Example, interactions: Sequence[Interaction]) -> list[dict]:
    """One verifier outcome (pass / fail, score, what the verifier read) per answer."""
    out = []
    for it in interactions:
        v = task.verify(example, it.completion)
        out.append(_item(it.id, "outcome", passed=v.correct, score=v.score, verifier=task.name, expected=v.expected))
    return out


def thumbs(task: Task, example: Example, interactions: Sequence[Interaction]) -> list[dict]:
    """Thumbs up for a correct answer, down otherwise (stored as a rating on the 2-point scale)."""
    return [_item(it.id, "thumbs", up=task.verify(example, it.completion).correct) for it in interactions]


def ratings(task: Task, example: Example, interactions: Sequence[Interaction]) -> list[dict]:
    """A 1-5 rating per answer (``grade``)."""
    return [_item(it.id, "rating", score=float(grade(task, example, it.completion)), scale=(1, 5))
            for it in interactions]


def preferences(task: Task, example: Example, interactions: Sequence[Interaction], max_pairs: int | None = 1,
                seed: int = 0, by: str = "verdict") -> list[dict]:
    """Preferences between answers to one prompt. ``by="verdict"``: correct beats incorrect; ``by="grade"``:
    the higher 1-5 grade wins (so two wrong answers are compared by closeness too). Ties are dropped; at most
    ``max_pairs`` per prompt (None: every pair), chosen at random with ``seed``."""
    if by not in ("verdict", "grade"):
        raise ValueError(f"preferences: by must be 'verdict' or 'grade', got {by!r}")
    key: Callable[[Interaction], float] = (
        (lambda it: float(task.verify(example, it.completion).correct)) if by == "verdict"
        else (lambda it: float(grade(task, example, it.completion))))
    scored = [(it, key(it)) for it in interactions]
    pairs = [(a, b) if sa > sb else (b, a) for (a, sa), (b, sb) in itertools.combinations(scored, 2)
             if sa != sb and a.completion != b.completion]
    random.Random(f"{seed}-{example.id}").shuffle(pairs)
    if max_pairs is not None:
        pairs = pairs[:max_pairs]
    return [_item(chosen.id, "preference", rejected=rejected.id) for chosen, rejected in pairs]


def ranking(task: Task, example: Example, interactions: Sequence[Interaction]) -> list[dict]:
    """One ranking of the k answers by grade, best first, equal grades tied; [] when all tie."""
    by_grade: dict[int, list[str]] = {}
    for it in interactions:
        by_grade.setdefault(grade(task, example, it.completion), []).append(it.id)
    if len(by_grade) < 2:
        return []
    order = [ids[0] if len(ids) == 1 else ids for _, ids in sorted(by_grade.items(), reverse=True)]
    return [_item(None, "ranking", ranking=order)]


def critiques(task: Task, example: Example, interactions: Sequence[Interaction]) -> list[dict]:
    """A ground-truth critique (``critique``) on every wrong answer."""
    return [_item(it.id, "critique", text=c, aspect="correctness")
            for it in interactions if (c := critique(task, example, it.completion))]


def edits(task: Task, example: Example, interactions: Sequence[Interaction]) -> list[dict]:
    """The corrected answer for every wrong one (the store logs it as an interaction derived from it)."""
    return [_item(it.id, "edit", text=e) for it in interactions if (e := edit(task, example, it.completion))]


def span_items(task: Task, example: Example, interactions: Sequence[Interaction]) -> list[dict]:
    """Spans over the wrong characters of every wrong answer that has any."""
    return [_item(it.id, "span", spans=s) for it in interactions if (s := spans(task, example, it.completion))]


def retries(task: Task, example: Example, interactions: Sequence[Interaction]) -> list[dict]:
    """"Try again" on a wrong answer, naming the next sample of the same prompt as its regeneration."""
    out = []
    for it, nxt in zip(interactions, [*interactions[1:], None], strict=True):
        if not task.verify(example, it.completion).correct:
            out.append(_item(it.id, "retry", regeneration_id=nxt.id if nxt else None, reason="try again"))
    return out


def followups(task: Task, example: Example, interactions: Sequence[Interaction], seed: int = 0) -> list[dict]:
    """The user's next message after every answer: thanks, or "no, that's wrong"."""
    return [_item(it.id, "followup", text=t, label=lab)
            for it in interactions for t, lab in [followup(task, example, it.completion, seed)]]


@dataclass(frozen=True)
class SignalModel:
    """How implicit reactions are observed (CausalRM's simulation, METHODS.md section 14).

    P(observed) rises linearly with how far the 1-5 grade is from neutral 3 (users react to answers they
    feel strongly about): ``p_min`` at 3, ``p_max`` at 1 and 5. An observed reaction's polarity is the truth
    (correct) flipped 0 -> 1 with ``e01`` and 1 -> 0 with ``e10``. Observed answers log ``click``, then
    ``copy`` (positive) or ``abandon`` (negative), each with the propensity."""

    p_min: float = 0.1
    p_max: float = 0.7
    e01: float = 0.2
    e10: float = 0.1

    def propensity(self, g: int) -> float:
        return self.p_min + (self.p_max - self.p_min) * abs(g - 3) / 2


def signals(task: Task, example: Example, interactions: Sequence[Interaction], seed: int = 0,
            model: SignalModel = SignalModel()) -> list[dict]:
    """Implicit signals with a logged propensity, observed with a grade-dependent bias and label noise."""
    out = []
    for n, it in enumerate(interactions):
        rng = random.Random(f"{seed}-{example.id}-{n}")
        g = grade(task, example, it.completion)
        p = model.propensity(g)
        if rng.random() >= p:
            continue  # the user did not react: nothing is logged (the builder still sees the answer)
        truth = g == 5
        flip = model.e10 if truth else model.e01
        observed = truth != (rng.random() < flip)
        out.append(_item(it.id, "signal", signal="click", propensity=p))
        out.append(_item(it.id, "signal", signal="copy" if observed else "abandon", propensity=p))
    return out


def judge(task: Task, example: Example, interactions: Sequence[Interaction], kinds: Sequence[str] = KINDS,
          seed: int = 0, max_pairs: int | None = 2, preference_by: str = "verdict") -> list[dict]:
    """Every feedback kind in ``kinds`` on the answers to one prompt, as SDK items."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"the simulated user gives {', '.join(KINDS)} (and principles); not {sorted(unknown)}")
    makers: dict[str, Callable[[], list[dict]]] = {
        "outcome": lambda: outcomes(task, example, interactions),
        "thumbs": lambda: thumbs(task, example, interactions),
        "rating": lambda: ratings(task, example, interactions),
        "preference": lambda: preferences(task, example, interactions, max_pairs, seed, preference_by),
        "ranking": lambda: ranking(task, example, interactions),
        "critique": lambda: critiques(task, example, interactions),
        "edit": lambda: edits(task, example, interactions),
        "span": lambda: span_items(task, example, interactions),
        "retry": lambda: retries(task, example, interactions),
        "followup": lambda: followups(task, example, interactions, seed),
        "signal": lambda: signals(task, example, interactions, seed),
    }
    return [item for kind in kinds for item in makers[kind]()]


# --- principles with a scope (C3PO) ----------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A standing rule whose scope and adherence code can check on a task's prompts and answers."""

    task: str
    text: str
    applies_when: str
    not_when: str
    in_scope: Callable[[Example], bool]
    revise: Callable[[str], str]  # a base answer rewritten to follow the rule (C3PO's "revised response")
    follows: Callable[[str], bool]


def _end_with(mark: str) -> Callable[[str], str]:
    return lambda text: text.rstrip() if text.rstrip().endswith(mark) else text.rstrip() + mark


RULES: dict[str, Rule] = {
    "arithmetic": Rule(
        "arithmetic", "End the answer with a period when the question is a subtraction.",
        "the question is a subtraction (a-b)", "the question is an addition (a+b)",
        in_scope=lambda ex: "-" in ex.messages[-1]["content"].split("What is ")[-1].lstrip("-"),
        revise=_end_with("."), follows=lambda text: text.rstrip().endswith(".")),
    "reverse": Rule(
        "reverse", "End the answer with an exclamation mark when the word starts with a vowel.",
        "the word to reverse starts with a vowel (a, e, i, o, u)", "the word starts with a consonant",
        in_scope=lambda ex: ex.answer[-1] in "aeiou",
        revise=_end_with("!"), follows=lambda text: text.rstrip().endswith("!")),
    "sort": Rule(
        "sort", "End the answer with a period when the word to sort has the letter a.",
        "the word to sort has the letter a", "the word has no letter a",
        in_scope=lambda ex: "a" in ex.answer,
        revise=_end_with("."), follows=lambda text: text.rstrip().endswith(".")),
}


def rule_for(text: str) -> Rule | None:
    """The rule a principle's text states (None for a principle the oracle did not make)."""
    return next((r for r in RULES.values() if r.text == text), None)


def principle_items(task: Task, born_from: str | None = None) -> list[dict]:
    """The task's principle as an SDK item: text, ``applies_when``, ``not_when`` (optionally on the answer
    it was born from)."""
    r = RULES[task.name]
    return [_item(born_from, "principle", text=r.text, applies_when=r.applies_when, not_when=r.not_when,
                  tags=[f"task:{task.name}"])]


def scope_examples(rule: Rule, task: Task, split: str = "train") -> tuple[list[Example], list[Example]]:
    """(in-scope, near-scope) prompts of ``task``'s split: the rule applies to the first, not the second."""
    exs = task.examples(split)
    return [e for e in exs if rule.in_scope(e)], [e for e in exs if not rule.in_scope(e)]


def c3po_rows(rule: Rule, in_scope: Sequence[tuple[Example, str]], near: Sequence[tuple[Example, str]],
              general: Sequence[tuple[Example, str]]) -> list[dict]:
    """C3PO's three datasets from (prompt, base answer) samples, truncated to equal length and zipped row-wise
    (METHODS.md section 8): scope 0 = in-scope (chosen = the answer revised to follow the rule, rejected = the
    base answer), 1 = near-scope and 2 = general (chosen = rejected = the base answer)."""
    n = min(len(in_scope), len(near), len(general))
    rows = []
    for i in range(n):
        for scope, (ex, base) in enumerate((in_scope[i], near[i], general[i])):
            chosen = rule.revise(base) if scope == 0 else base
            rows.append({"prompt": list(ex.messages), "chosen": chosen, "rejected": base, "scope": scope})
    return rows
