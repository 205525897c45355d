"""What a reward function is, and the small pieces every built-in one shares.

A ``Reward`` has TRL's reward-function signature, so a TRL reward function works here unchanged:

    def fn(prompts, completions, completion_ids=None, **columns) -> list[float | None] | dict[str, list]

``prompts`` and ``completions`` are parallel lists (text, or chat messages: a conversational
completion is ``[{"role": "assistant", "content": ...}]``); ``completion_ids`` are the sampled
token ids; ``columns`` are the dataset's other columns, one value per completion. ``None`` means
"does not apply to this completion" and counts 0 in a weighted sum (TRL's nansum). A function may be
``async def`` (the online loop awaits it), and may return a dict of lists for several signals.

``load_function("pkg.mod:fn")`` imports a user's function by its path; its errors say which part of
the path failed and why.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from typing import Any

Reward = Callable[..., Any]  # (prompts, completions, **columns) -> list[float | None] | dict[str, list[...]]


def text_of(completion: Any) -> str:
    """The text of a completion or prompt: plain text, or the last message of a chat."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, (list, tuple)) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content") or "")
    raise TypeError(f"a completion must be text or a list of chat messages, got {type(completion).__name__}")


def render_chat(prompt: Any) -> str:
    """A prompt as plain text for a judge: the text itself, or one ``role: content`` line per message."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m.get('role', 'user')}: {m.get('content') or ''}" for m in prompt)


def name_of(fn: Reward) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def is_async(fn: Reward) -> bool:
    """An ``async def`` function, or an object whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


def renamed(fn: Reward, name: str) -> Reward:
    """``fn`` under the metric name ``name``; a user's function is wrapped, never changed in place."""
    if name_of(fn) == name:
        return fn
    if is_async(fn):
        async def wrapper(*args, **kwargs):
            return await fn(*args, **kwargs)
    else:
        def wrapper(*args, **kwargs):
            return fn(*args, **kwargs)
    functools.update_wrapper(wrapper, fn)
    wrapper.__name__ = wrapper.__qualname__ = name
    return wrapper


def load_function(path: str) -> Reward:
    """The callable at ``"pkg.mod:fn"`` (``fn`` may be dotted: ``"pkg.mod:Class.method"``)."""
    if not isinstance(path, str) or path.count(":") != 1 or not all(path.split(":")):
        raise ValueError(f"reward path '{path}': expected 'package.module:function'")
    module_name, attr = path.split(":")
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise ImportError(f"reward path '{path}': no module named '{e.name}' (is it installed, or on "
                              f"PYTHONPATH?)") from None
        raise ImportError(f"reward path '{path}': importing module '{module_name}' failed: {e}") from e
    except Exception as e:
        raise ImportError(f"reward path '{path}': importing module '{module_name}' failed: "
                          f"{type(e).__name__}: {e}") from e
    for i, part in enumerate(attr.split(".")):
        if not hasattr(obj, part):
            where = module_name if i == 0 else f"{module_name}:{'.'.join(attr.split('.')[:i])}"
            public = sorted(n for n in dir(obj) if not n.startswith("_") and callable(getattr(obj, n, None)))
            hint = f"; it has {', '.join(public[:12])}" if public else ""
            raise AttributeError(f"reward path '{path}': '{where}' has no attribute '{part}'{hint}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"reward path '{path}': '{attr}' is a {type(obj).__name__}, not a function")
    return obj
