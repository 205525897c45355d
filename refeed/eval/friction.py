"""Feedback Friction (METHODS.md section 12): does a model take feedback up, turn after turn?

    res = friction(generator, tok, task, examples, turns=5, source="critique", temperature=0.7)
    res["cumulative_accuracy"]   # solved by turn 1, 2, ... (a prompt stays solved)
    res["target"]                # any of `turns` answers right without feedback, at the same temperatures
    res["friction"]              # target - final accuracy, paired 95% interval over the prompts
    res["uptake"]                # final accuracy with `source` minus with a bare "try again", same turns and
                                 # temperatures, paired interval: zero for a model that only resamples
    res["uptake_by_turn"]        # the same after each turn

Every episode runs on the multi-turn core (``refeed.envs.run``): the solver sees its own served tokens and the
feedback's, never a re-tokenized history. The first turn is at ``temperature`` (0 for greedy, as the paper's
solver); later turns too, or on the paper's progressive schedule ``min(0.15 t, 1.5)`` (``progressive=True``).
The target takes one fresh answer per turn at that turn's temperature: the paper's oracle beam at one
generation per attempt. Mitigations: ``progressive`` (the schedule) and ``reject`` (the feedback lists the
answers already tried and asks for a different one, the paper's rejection of previous answers).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from refeed.envs import FeedbackEnv, get_source, run
from refeed.eval.heldout import paired_bootstrap
from refeed.tasks.base import Task
from refeed.types import Example, SamplingParams


def schedule(turns: int, temperature: float, progressive: bool) -> list[float]:
    """Each turn's temperature: ``temperature`` throughout, or the paper's ``min(0.15 t, 1.5)`` from turn 0."""
    return [min(0.15 * t, 1.5) if progressive else temperature for t in range(turns)]


def rejecting(source):
    """``source`` with the answers already tried appended, asking for another (the paper's MCQ mitigation, for
    free-form answers)."""
    fn = get_source(source) if isinstance(source, str) else source

    def with_rejection(task, ex, answer, history):
        text = fn(task, ex, answer, history)
        tried = list(dict.fromkeys(m["content"] for m in history if m["role"] == "assistant"))
        return f"{text} You have already tried: {', '.join(tried)}. Give a different answer." if text else text
    return with_rejection


def _ci(before: Sequence[float], after: Sequence[float]) -> dict:
    lo, hi = paired_bootstrap(before, after)
    return {"value": (sum(after) - sum(before)) / len(before), "ci": [lo, hi], "n": len(before)}


def episodes(generator, tok, task: Task, examples: Sequence[Example], turns: int, source, temps: Sequence[float],
             sampling: SamplingParams) -> list:
    envs = [FeedbackEnv(task, source, max_turns=turns) for _ in examples]
    return run(generator, tok, envs, examples, sampling, temperatures=temps)


def friction(generator, tok, task: Task, examples: Sequence[Example], turns: int = 5, source="critique",
             temperature: float = 0.7, progressive: bool = False, reject: bool = False, max_new_tokens: int = 16,
             seed: int = 0, temperatures: Sequence[float] | None = None) -> dict:
    """The protocol of the module docstring on ``examples``; see it for each field. ``temperatures`` (one per
    turn) sets the schedule outright, e.g. a greedy first answer and sampled revisions: ``[0.0, 0.7, 0.7]``."""
    if turns < 1:
        raise ValueError(f"friction: turns must be >= 1, got {turns}")
    if not examples:
        raise ValueError("friction: no prompts to measure on")
    if temperatures is not None and len(temperatures) != turns:
        raise ValueError(f"friction: {len(temperatures)} temperatures for {turns} turns")
    temps = list(temperatures) if temperatures is not None else schedule(turns, temperature, progressive)
    sampling = SamplingParams(temperature=temps[0], max_new_tokens=max_new_tokens, seed=seed)
    wrap = rejecting if reject else (lambda s: s)

    def solved_by_turn(outcomes) -> list[list[float]]:  # [prompt][turn] -> solved by then
        rows = []
        for o in outcomes:
            first = next((k for k, r in enumerate(o.episode.rewards) if r > 0), None)
            rows.append([float(first is not None and first <= t) for t in range(turns)])
        return rows

    fed = episodes(generator, tok, task, examples, turns, wrap(source), temps, sampling)
    bare = episodes(generator, tok, task, examples, turns, wrap("try_again"), temps, sampling)
    with_fb, with_retry = solved_by_turn(fed), solved_by_turn(bare)
    any_ok = [0.0] * len(examples)
    for t, temp in enumerate(temps):  # one fresh answer per turn, at that turn's temperature, no feedback
        outs = generator.generate([list(e.messages) for e in examples],
                                  dataclasses.replace(sampling, temperature=temp, seed=seed + 1000 + t))
        for i, (e, ro) in enumerate(zip(examples, outs, strict=True)):
            any_ok[i] = max(any_ok[i], float(task.verify(e, ro.completion).correct))
    final, final_retry = [r[-1] for r in with_fb], [r[-1] for r in with_retry]
    n, levels = len(examples), sorted({e.difficulty for e in examples})
    return {
        "task": task.name, "n": n, "turns": turns, "source": source if isinstance(source, str) else "custom",
        "temperatures": temps, "progressive": progressive, "reject": reject,
        "cumulative_accuracy": [sum(r[t] for r in with_fb) / n for t in range(turns)],
        "cumulative_accuracy_try_again": [sum(r[t] for r in with_retry) / n for t in range(turns)],
        "target": sum(any_ok) / n,
        "friction": _ci(final, any_ok),
        "uptake": _ci(final_retry, final),
        # the same at every turn: uptake_by_turn[1] is "after one critique vs after one try again"
        "uptake_by_turn": [_ci([r[t] for r in with_retry], [r[t] for r in with_fb]) for t in range(turns)],
        "first_by_difficulty": {d: sum(r[0] for r, e in zip(with_fb, examples, strict=True) if e.difficulty == d)
                                / sum(e.difficulty == d for e in examples) for d in levels},
        "n_by_difficulty": {d: sum(e.difficulty == d for e in examples) for d in levels},
        "ended": {k: sum(o.ended == k for o in fed) for k in ("solved", "turns", "context")},
    }
