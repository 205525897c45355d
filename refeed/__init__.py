"""refeed: turn every kind of feedback on a language model's outputs into a better model.

    import refeed
    store = refeed.Store("sqlite:///feedback.db")
    pairs = refeed.datasets.preference_pairs(store, min_gap=1)

Attributes load lazily, so ``import refeed`` pulls in neither SQLAlchemy nor torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "Store":
        from refeed.store import Store

        return Store
    if name in ("datasets", "store", "models", "tasks", "objectives", "train", "eval", "pipelines"):
        return importlib.import_module(f"refeed.{name}")
    raise AttributeError(f"module 'refeed' has no attribute {name!r}")
