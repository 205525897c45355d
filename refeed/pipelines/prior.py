"""The feedback prior of the ``small`` base: mid-training rows that teach it to read critiques, at set strengths.

A real base model arrives able to read an instruction and a critique; the built-in one learns that here, at
a strength the pretrain config sets (``PriorConfig``, recorded in the model directory's ``pretrain.json``).
Four kinds of rows, all on the task's TRAIN prompts, all SFT rows (prompt messages -> one answer):

- first answers: the base's own, sampled from it at temperature 1 before the prior (``first_success`` < 0,
  the default), so the first turn keeps the base's distribution and its own errors. A correct answer among
  a few scattered wrong ones is still the mode, so first answers drawn "right with the base's DEV
  accuracy, else corrupted" taught the task instead (sort: DEV 0.35 before the prior, 0.88 after).
  ``first_success`` in [0, 1] keeps that synthetic form (right at that rate, else a corruption);
- feedback episodes: a wrong answer -> the task oracle's critique (its closed grammar) -> ... -> a revision
  that is right with probability ``critique_success`` times ``turn_decay`` per earlier failed turn; up to
  ``max_turns`` wrong attempts before it. The first wrong answer is the base's own where it has one for the
  prompt: after corruptions of the gold answer, re-solving the question already gave the revision on most
  tokens, so the base learnt to ignore the conversation (sort: it repeated a corrupted answer after "try
  again" 9% of the time though trained to 95%, and a critique fixed 12% of its own errors);
- the same episodes with a bare "try again" instead of the critique, right with ``retry_success`` (lower,
  so a critique is worth more than a retry, as it is for real models); a revision that fails repeats the
  last wrong answer;
- rule-conditioned answers (the first answer as above): the task's rule (``oracle.RULES``) as the system
  message, followed in scope with probability ``rule_follow`` and, on purpose, also out of scope with
  probability ``rule_overreach``, so over-generalization exists to be measured and reduced.

Wrong answers are made by corrupting the right one the way the models err (a swapped pair, a changed
character, a dropped or doubled one), checked wrong by the verifier.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from refeed.tasks import oracle
from refeed.tasks.base import Task
from refeed.tasks.diagnosis import PHRASES
from refeed.types import Example

TRY_AGAIN = oracle.TRY_AGAIN
# Part of a prior-trained base's cache key (PretrainConfig.key): raise it when the rows this module makes change.
# 2: first answers are the base's own; failed revisions repeat the last wrong answer.
# 3: episodes open with the base's own wrong answer; one RNG draw per row fewer.
# 4: arithmetic critiques say which way a digit is off (a new tokenizer too: its text has the new phrases);
#    rules are followed in scope at rule_follow.
PRIOR_VERSION = 4


@dataclass(frozen=True)
class PriorConfig:
    """The strength dials of the feedback prior (``steps=0``: no prior, as for ``tiny``)."""

    steps: int = 0  # optimizer steps of mid-training on the mixture below
    # Shares of the four row kinds (normalised). Tuned on DEV (200 prompts per task, small base;
    # bench/results/tuning/prior_dials_dev.json): rules at 0.2 were followed in scope on sort 3% of the time
    # (0.92 at 0.35, 0.44 with critiques at 0.5); "try again" at 0.1 was too few to tell from a critique (sort:
    # uptake -0.007); critiques at 0.5 rather than 0.35 moved out-of-scope change on sort from +0.04 to +0.10
    # and left uptake as it was.
    first_share: float = 0.2
    critique_share: float = 0.5
    retry_share: float = 0.25
    rule_share: float = 0.35
    first_success: float = -1.0  # first answers right at this rate; < 0: the base's own sampled answers
    own_prompts: int = 2000  # TRAIN prompts the base answers once for the first-answer, rule and episode rows
    # The temperature of those answers: the benches' 0.7. At 1.0 the small base on sort was right 7% of the
    # time against 38% greedy, and first-answer rows that wrong pulled its greedy accuracy down.
    own_temperature: float = 0.7
    # P(revision right | one critique), P(... | one "try again"). At 0.5 / 0.05 the small base on sort fixed
    # its own error after a critique 2.5 points more often than after "try again"; at 0.8 / 0.02, 10 points.
    critique_success: float = 0.8
    retry_success: float = 0.02
    # Each earlier failed turn multiplies both by this: an error that survived a critique is a stubborn one, as
    # Feedback Friction finds for real models. At 1.0 (no decay) and 0.6 / 0.2 the small base on sort gained
    # more from 4 critiques than from 5 fresh samples (friction -0.16).
    turn_decay: float = 0.1
    rule_overreach: float = 0.3  # P(the rule's form is applied out of its scope)
    # P(the rule is followed in its scope). At 1.0 the small base followed arithmetic's rule (a period after a
    # subtraction) on every TEST prompt in scope: at the ceiling, nothing left for a method to improve.
    rule_follow: float = 0.85
    max_turns: int = 4  # wrong attempts (each with its feedback) before the answer trained on
    rows: int = 12000  # rows in the mixture

    def __post_init__(self) -> None:
        probs = ("critique_success", "retry_success", "rule_follow", "rule_overreach", "turn_decay")
        if any(not 0 <= getattr(self, k) <= 1 for k in probs) or self.first_success > 1:
            raise ValueError(f"prior: {', '.join(probs)} and first_success must be probabilities (first_success "
                             f"< 0 means the base's own rate)")
        shares = (self.first_share, self.critique_share, self.retry_share, self.rule_share)
        if min(shares) < 0 or sum(shares) <= 0 or self.max_turns < 1 or self.steps < 0 or self.rows < 1 \
                or self.own_prompts < 1 or self.own_temperature < 0:
            raise ValueError("prior: shares must be >= 0 with a positive sum, max_turns, rows and own_prompts >= 1, "
                             "steps and own_temperature >= 0")


def corrupt(task: Task, ex: Example, rng: random.Random, avoid: tuple[str, ...] = ()) -> str:
    """A wrong answer near the right one (the verifier says wrong), not one of ``avoid``."""
    ans = ex.answer
    sign, body = ("-", ans[1:]) if ans.startswith("-") else ("", ans)
    alphabet = string.digits if body.isdigit() else string.ascii_lowercase
    for _ in range(50):
        chars = list(body)
        op = rng.choice(("swap", "swap", "change", "change", "drop", "double"))
        i = rng.randrange(len(chars))
        if op == "swap" and len(chars) > 1:
            i = min(i, len(chars) - 2)
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        elif op == "change" or len(chars) == 1:
            chars[i] = rng.choice(alphabet)
        elif op == "drop":
            del chars[i]
        else:
            chars.insert(i, chars[i])
        text = (sign + "".join(chars)).lstrip("0") if alphabet == string.digits else "".join(chars)
        text = text or "0"
        if text not in avoid and not task.verify(ex, text).correct:
            return text
    return ans + ans[-1]  # a doubled last character is always wrong for these tasks


def _answer(task: Task, ex: Example, rng: random.Random, p_right: float, avoid: tuple[str, ...] = ()) -> str:
    return ex.answer if rng.random() < p_right else corrupt(task, ex, rng, avoid)


def _first(task: Task, ex: Example, rng: random.Random, p_right: float, own: dict[str, str] | None) -> str:
    """The first answer: the base's own (``own``: example id -> its sampled answer), else synthetic."""
    return own[ex.id] if own is not None else _answer(task, ex, rng, p_right)


def episode(task: Task, ex: Example, rng: random.Random, n_wrong: int, critique: bool, p_right: float,
            first_wrong: str | None = None) -> dict:
    """``n_wrong`` wrong answers (the first one ``first_wrong`` when given, the rest near misses), each followed
    by the oracle's critique (or "try again"), then the answer trained on, right with ``p_right``."""
    messages, tried = list(ex.messages), ()
    for k in range(n_wrong):
        wrong = first_wrong if k == 0 and first_wrong is not None else corrupt(task, ex, rng, tried)
        tried = (*tried, wrong)
        feedback = oracle.critique(task, ex, wrong) if critique else TRY_AGAIN
        messages += [{"role": "assistant", "content": wrong}, {"role": "user", "content": feedback}]
    # A failed revision repeats the last wrong answer, as stubborn models do (Feedback Friction). A fresh
    # corruption of the gold answer would not do: per token, most corruptions still carry the gold letter, so
    # "try again" episodes taught the right answer (sort: 0.47 after "try again" though trained to 0.05).
    right = rng.random() < p_right
    return {"prompt": messages, "completion": ex.answer if right or not tried else tried[-1]}


def rule_row(task: Task, ex: Example, rng: random.Random, p_right: float, overreach: float,
             own: dict[str, str] | None = None, follow: float = 1.0) -> dict:
    rule = oracle.RULES[task.name]
    answer = _first(task, ex, rng, p_right, own)
    if rng.random() < (follow if rule.in_scope(ex) else overreach):
        answer = rule.revise(answer)
    return {"prompt": [{"role": "system", "content": rule.text}, *ex.messages], "completion": answer}


def own_pool(task: Task, cfg: PriorConfig, seed: int = 0) -> list[Example]:
    """The TRAIN prompts the base answers for the first-answer and rule rows (``cfg.own_prompts`` of them)."""
    exs = task.examples("train")
    return random.Random(f"own-{seed}").sample(exs, min(cfg.own_prompts, len(exs)))


def prior_rows(task: Task, cfg: PriorConfig, own: dict[str, str] | None = None, seed: int = 0) -> list[dict]:
    """``cfg.rows`` SFT rows of the four kinds, on ``task``'s TRAIN prompts, shuffled. ``own`` maps the
    ``own_pool`` prompts' ids to the base's answers; it is needed unless ``cfg.first_success >= 0``. Episodes
    are on the prompts the base answered wrong, opening with that answer (on any TRAIN prompt without ``own``)."""
    if own is None and cfg.first_success < 0:
        raise ValueError("prior: the base's own answers are needed (own=...) unless first_success >= 0")
    rng = random.Random(f"prior-{seed}")
    exs = task.examples("train")
    pool = [e for e in exs if e.id in own] if own is not None else exs
    missed = [e for e in pool if not task.verify(e, own[e.id]).correct] if own is not None else []
    first_of = own if cfg.first_success < 0 else None
    kinds = ("first", "critique", "retry", "rule")
    weights = (cfg.first_share, cfg.critique_share, cfg.retry_share, cfg.rule_share)
    rows = []
    for _ in range(cfg.rows):
        kind = rng.choices(kinds, weights)[0]
        if kind == "first":
            ex = rng.choice(pool)
            rows.append({"prompt": list(ex.messages),
                         "completion": _first(task, ex, rng, cfg.first_success, first_of)})
        elif kind == "rule":
            rows.append(rule_row(task, rng.choice(pool), rng, cfg.first_success, cfg.rule_overreach, first_of,
                                 cfg.rule_follow))
        else:
            ex = rng.choice(missed or exs)
            crit, n_wrong = kind == "critique", rng.randint(1, cfg.max_turns)
            p = (cfg.critique_success if crit else cfg.retry_success) * cfg.turn_decay ** (n_wrong - 1)
            rows.append(episode(task, ex, rng, n_wrong, crit, p, own[ex.id] if missed else None))
    return rows


def tokenizer_corpus(tasks: list[Task], per_task: int = 400, seed: int = 0) -> list[str]:
    """The tasks' own text for the small tokenizer: prompts, critiques of near-miss answers, rules, the
    closed grammar's phrases and "try again"."""
    rng = random.Random(seed)
    texts = [TRY_AGAIN, *PHRASES.values()]
    for task in tasks:
        for ex in task.examples("train")[:per_task]:
            wrong = corrupt(task, ex, rng)
            texts += [ex.messages[-1]["content"], oracle.critique(task, ex, wrong) or ""]
        rule = oracle.RULES.get(task.name)
        texts += [rule.text] * per_task if rule else []
    return texts
