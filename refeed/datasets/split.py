"""Train / eval split by prompt: every row of one prompt lands on the same side, so nothing leaks."""

from __future__ import annotations

import hashlib
import json


def prompt_key(prompt) -> str:
    return hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()


def split_by_prompt(ds, eval_fraction: float = 0.1, seed: int = 0, column: str = "prompt"):
    """A ``DatasetDict`` with ``train`` and ``eval``; a prompt's side depends only on the prompt and seed."""
    from datasets import DatasetDict

    if not 0 < eval_fraction < 1:
        raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction}")
    if column not in ds.column_names:
        raise ValueError(
            f"split_by_prompt: the dataset has no {column!r} column (columns: {ds.column_names})"
        )

    def is_eval(prompt) -> bool:
        h = hashlib.sha256(f"{seed}:{prompt_key(prompt)}".encode()).digest()
        return int.from_bytes(h[:8], "big") / 2**64 < eval_fraction

    flags = [is_eval(p) for p in ds[column]]
    return DatasetDict(
        train=ds.select([i for i, f in enumerate(flags) if not f]),
        eval=ds.select([i for i, f in enumerate(flags) if f]),
    )
