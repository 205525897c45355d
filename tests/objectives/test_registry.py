"""Every registered objective: cites a URL, has a defaulted Config dataclass, refuses unknown keys,
declares its capabilities with the documented types, and stays within the 200-line file budget."""

import dataclasses
import inspect
import re
import sys

import pytest

from refeed.config import ConfigError
from refeed.objectives import OBJECTIVES, BatchKind, Head, build, capability
from refeed.objectives.base import CAPABILITY_DEFAULTS


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_objective_contract(name):
    cls = OBJECTIVES[name]
    doc = sys.modules[cls.__module__].__doc__ or ""
    assert re.search(r"https?://\S+", doc), f"{name}: module docstring cites no URL"
    assert dataclasses.is_dataclass(cls.Config)
    obj = build(name)  # every field has a default
    assert isinstance(cls.batch_kind, BatchKind) and isinstance(cls.needs_reference, bool)
    assert isinstance(capability(obj, "head"), Head)
    assert all(isinstance(c, str) for c in capability(obj, "extra_columns"))
    if capability(obj, "head") is Head.SCORE:
        assert callable(getattr(obj, "reward", None)) and capability(obj, "num_heads") >= 1
        assert not cls.needs_reference
    assert len(inspect.getsource(sys.modules[cls.__module__]).splitlines()) <= 200
    with pytest.raises(ConfigError, match="unknown config key 'objective.no_such_key'"):
        build(name, {"no_such_key": 1})


def test_unknown_objective_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown objective 'dpx'.*dpo"):
        build("dpx")


def test_capability_defaults_cover_every_capability_used():
    used = {a for cls in OBJECTIVES.values() for a in vars(cls) if a in CAPABILITY_DEFAULTS}
    assert used <= set(CAPABILITY_DEFAULTS)
    assert capability(build("dpo"), "head") is Head.LM and capability(build("dpo"), "staged") is False
