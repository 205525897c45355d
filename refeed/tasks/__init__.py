"""Built-in tasks with verifiers: fixed seeded splits of chat prompts and a checker that knows the answer.

    task = get_task("arithmetic", levels=(1, 2), seed=0)
    ex = task.examples("test")[0]; task.verify(ex, "42")
"""

from __future__ import annotations

import re
from typing import Any

from refeed.tasks.arithmetic import Arithmetic
from refeed.tasks.base import Split, SplitSizes, Task
from refeed.tasks.reverse import Reverse
from refeed.tasks.sort import Sort

TASKS: dict[str, type] = {"arithmetic": Arithmetic, "reverse": Reverse, "sort": Sort}
# What each task's prompts look like, so a dataset can be recognised as (not) being a built-in task's.
PROMPTS: dict[str, re.Pattern] = {"arithmetic": re.compile(r"What is -?\d+[+-]\d+\?"),
                                  "reverse": re.compile(r"Reverse the word: [a-z]+"),
                                  "sort": re.compile(r"Sort the letters: [a-z]+")}


def task_of(prompt: Any) -> str | None:
    """The built-in task whose prompts look like ``prompt`` (chat messages or text), or None."""
    text = prompt if isinstance(prompt, str) else (prompt[-1].get("content") if prompt else "") or ""
    return next((name for name, p in PROMPTS.items() if p.fullmatch(str(text).strip())), None)


def get_task(name: str, **kwargs: Any) -> Task:
    """The built-in task ``name``; keyword arguments go to its dataclass (levels, seed, sizes ...)."""
    if name not in TASKS:
        raise ValueError(f"unknown task '{name}'. Built-in tasks: {', '.join(sorted(TASKS))}.")
    if isinstance(kwargs.get("sizes"), dict):
        kwargs["sizes"] = SplitSizes(**kwargs["sizes"])
    if "levels" in kwargs:
        kwargs["levels"] = tuple(kwargs["levels"])
    return TASKS[name](**kwargs)


__all__ = ["PROMPTS", "TASKS", "task_of", "Arithmetic", "Reverse", "Sort", "Split", "SplitSizes", "Task", "get_task"]
