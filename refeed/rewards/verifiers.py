"""The built-in tasks' verifiers as reward functions (``refeed.tasks``: arithmetic, reverse).

    fn = verifier("arithmetic")                    # 1.0 when the answer is right, else 0.0
    fn(prompts=[[{"role": "user", "content": "What is 2+3?"}]], completions=[[{"role": "assistant", "content": "5"}]])
    verifier("reverse", partial=True)              # the task's partial credit (``Verdict.score``)

Which ground truth a completion is checked against, in this order:
1. an ``answer`` column (the reference answer as text), as TRL datasets usually carry;
2. an ``example_id`` column, looked up in the task's splits (built with ``task_args``);
3. the prompt itself, looked up the same way (its last message).
The task is ``task``, or, when None, the built-in task whose prompts look like each prompt
(``refeed.tasks.task_of``). A prompt whose ground truth cannot be found is an error naming it, not a
silent zero: a verifier without its answer is a configuration mistake.

Completions may be text or conversational; the verifier reads the text of the last message.
``partial=False`` rewards correctness (``float(verdict.correct)``); ``partial=True`` the task's
graded score, which for reverse is the fraction of leading letters right and for arithmetic equals
correctness (the task defines no partial credit).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Any

from refeed.rewards.base import Reward, text_of
from refeed.tasks import TASKS, get_task, task_of
from refeed.types import Example


def verifier(task: str | None = None, partial: bool = False, task_args: dict[str, Any] | None = None) -> Reward:
    """A TRL-signature reward function scoring completions with a built-in task's verifier."""
    if task is not None and task not in TASKS:
        raise ValueError(f"verifier: unknown task '{task}'. Built-in tasks: {', '.join(sorted(TASKS))}.")
    try:
        args = json.dumps(task_args or {}, sort_keys=True)  # the caches' key: plain values only
    except TypeError:
        raise ValueError(f"verifier: task_args must be plain values (numbers, text, lists), got {task_args}") from None
    if task is not None:
        _task(task, args)  # bad task_args fail here, not at the first step

    def fn(prompts: Sequence[Any], completions: Sequence[Any], completion_ids=None, **columns) -> list[float | None]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        out: list[float | None] = []
        answers = columns.get("answer")
        for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
            if answers is not None and answers[i] is None:  # a row whose answer nobody knows: does not apply
                out.append(None)
                continue
            name = task or task_of(prompt)
            if name is None:
                raise ValueError(f"verifier: prompt {i} ({text_of(prompt)[:60]!r}) is not a built-in task's prompt; "
                                 f"name the task ({{name: verifier, task: ...}}) or give an 'answer' column")
            t, example = _task(name, args), _ground_truth(name, args, prompt, columns, i)
            verdict = t.verify(example, text_of(completion))
            out.append(float(verdict.score) if partial else float(verdict.correct))
        return out

    fn.__name__ = fn.__qualname__ = "verifier_partial" if partial else "verifier"
    return fn


@cache
def _task(name: str, args: str):
    return get_task(name, **json.loads(args))


@cache
def _index(name: str, args: str) -> tuple[dict[str, Example], dict[str, Example]]:
    """The task's examples by id and by prompt text, over all splits."""
    t = _task(name, args)
    by_id, by_prompt = {}, {}
    for split in ("train", "dev", "test"):
        for ex in t.examples(split):
            by_id[ex.id] = ex
            by_prompt[ex.messages[-1]["content"].strip()] = ex
    return by_id, by_prompt


def _ground_truth(name: str, args: str, prompt: Any, columns: dict[str, Any], i: int) -> Example:
    if columns.get("answer") is not None:
        return Example(id=f"{name}-row{i}", task=name, messages=(), answer=str(columns["answer"][i]))
    by_id, by_prompt = _index(name, args)
    if columns.get("example_id") is not None:
        key = columns["example_id"][i]
        if key not in by_id:
            raise ValueError(f"verifier: example_id '{key}' (completion {i}) is not in task '{name}' with "
                             f"task_args {args}; give an 'answer' column")
        return by_id[key]
    key = text_of(prompt).strip()
    if key not in by_prompt:
        raise ValueError(f"verifier: prompt {key[:60]!r} (completion {i}) is not in task '{name}' with task_args "
                         f"{args}; give an 'answer' or 'example_id' column")
    return by_prompt[key]
