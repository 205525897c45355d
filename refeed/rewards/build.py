"""A recipe's ``rewards:`` list -> reward functions and their weights.

    fns, weights = build_rewards([{"name": "verifier"}, {"name": "overlong", "max_length": 64, "cache": 16}],
                                 task="arithmetic")

Each entry is one of (``weight`` defaults to 1; ``label`` renames the function's metrics):

    - verifier                                   # a bare name or import path works too
    - {name: verifier, task: reverse, partial: true, task_args: {levels: [3, 4]}}
    - {path: "mypkg.rewards:exact_match", weight: 0.5}   # a user's TRL-style function
    - {name: reward_model, path: runs/bradley_terry-.../model, principle: "...", device: cpu}
    - {name: judge, base_url: "http://127.0.0.1:8000/v1", model: judge, rubric: "...",   # or principle:
       mode: pointwise | group, scale: [1, 10], api_key_env: OPENAI_API_KEY, cache: judge-cache.jsonl}
    - {name: overlong, max_length: 512, cache: 128}      # DAPO Eq. 13 over completion_ids
    - {name: composite, parts: [{name: verifier}, {name: overlong, max_length: 64, cache: 16, weight: 0.5}]}

``task`` is the recipe's task, the verifier's default. Every function has a ``__name__`` used for
its metrics (``rewards/<name>/mean``); two functions that would share one get ``_2``, ``_3`` suffixes.
An unknown name or key is an error that names it and lists the choices.
"""

from __future__ import annotations

from typing import Any

from refeed.config import ConfigError
from refeed.rewards.base import Reward, load_function, name_of, renamed

COMMON = {"name", "weight", "label"}
KEYS: dict[str, set[str]] = {
    "verifier": {"task", "task_args", "partial"},
    "reward_model": {"path", "device", "dtype", "batch_size", "max_length", "principle"},
    "judge": {"base_url", "model", "rubric", "principle", "mode", "scale", "api_key_env", "temperature", "max_tokens",
              "on_unparsable", "cache", "max_concurrency", "max_retries", "backoff", "timeout", "params", "template",
              "system"},
    "overlong": {"max_length", "cache"},
    "composite": {"parts"},
}
REQUIRED = {"reward_model": ("path",), "judge": ("base_url", "model"), "overlong": ("max_length", "cache"),
            "composite": ("parts",)}


def build_rewards(specs: list[dict], task: str | None = None) -> tuple[list[Reward], list[float]]:
    """Reward functions and weights for a recipe's ``rewards:`` list (see the module docstring)."""
    if not isinstance(specs, (list, tuple)) or not specs:
        raise ConfigError("rewards: expected a non-empty list, e.g. [{name: verifier}]")
    fns, weights, seen = [], [], {}
    for i, spec in enumerate(specs):
        fn, w = _one(spec, task, f"rewards[{i}]")
        base = name_of(fn)
        seen[base] = seen.get(base, 0) + 1
        fns.append(fn if seen[base] == 1 else renamed(fn, f"{base}_{seen[base]}"))
        weights.append(w)
    return fns, weights


def _one(spec: Any, task: str | None, where: str) -> tuple[Reward, float]:
    if isinstance(spec, str):
        spec = {"path": spec} if ":" in spec else {"name": spec}
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping such as {{name: verifier}}, got {spec!r}")
    spec = dict(spec)
    weight = spec.pop("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise ConfigError(f"{where}: weight must be a number, got {weight!r}")
    label = spec.pop("label", None)
    name = spec.get("name")
    if name is None:
        if "path" not in spec:
            raise ConfigError(f"{where}: give name (one of {', '.join(sorted(KEYS))}) or path ('pkg.module:function')")
        _check_keys(spec, {"path"}, where, "a user function")
        fn = load_function(spec["path"])
    else:
        if name not in KEYS:
            raise ConfigError(f"{where}: unknown reward '{name}'. Built-in rewards: {', '.join(sorted(KEYS))}; "
                              f"or give path: 'pkg.module:function' for your own")
        _check_keys(spec, COMMON | KEYS[name], where, f"reward '{name}'")
        missing = [k for k in REQUIRED.get(name, ()) if spec.get(k) is None]
        if missing:
            raise ConfigError(f"{where}: reward '{name}' needs {', '.join(missing)}")
        args = {k: v for k, v in spec.items() if k != "name"}
        try:
            fn = BUILDERS[name](args, task, where)
        except (ValueError, TypeError, FileNotFoundError) as e:
            raise ConfigError(f"{where}: {e}") from e
    return (renamed(fn, label) if label else fn), float(weight)


def _check_keys(spec: dict, allowed: set[str], where: str, what: str) -> None:
    unknown = sorted(set(spec) - allowed - {"name"})
    if unknown:
        raise ConfigError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for {what}; "
                          f"allowed: {', '.join(sorted(allowed - {'name'} | {'weight', 'label'}))}")


def _verifier(args: dict, task: str | None, where: str) -> Reward:
    from refeed.rewards.verifiers import verifier

    return verifier(args.get("task", task), partial=bool(args.get("partial", False)), task_args=args.get("task_args"))


def _reward_model(args: dict, task: str | None, where: str) -> Reward:
    from refeed.rewards.rm import reward_model_reward

    return reward_model_reward(args.pop("path"), **args)


def _judge(args: dict, task: str | None, where: str) -> Reward:
    from refeed.rewards.judges import JudgeConfig, judge

    if "scale" in args:
        args["scale"] = tuple(args["scale"])
    return judge(JudgeConfig(**args))


def _overlong(args: dict, task: str | None, where: str) -> Reward:
    from refeed.rewards.shaping import overlong

    return overlong(args["max_length"], args["cache"])


def _composite(args: dict, task: str | None, where: str) -> Reward:
    from refeed.rewards.shaping import composite

    parts = args["parts"]
    if not isinstance(parts, (list, tuple)) or not parts:
        raise ValueError("composite: parts must be a non-empty list of reward entries")
    return composite([_one(p, task, f"{where}.parts[{j}]") for j, p in enumerate(parts)])


BUILDERS = {"verifier": _verifier, "reward_model": _reward_model, "judge": _judge, "overlong": _overlong,
            "composite": _composite}
