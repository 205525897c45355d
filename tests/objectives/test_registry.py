"""Every registered objective: cites a URL, has a defaulted Config dataclass, refuses unknown keys,
declares its capabilities with the documented types, and stays within the 200-line file budget."""

import dataclasses
import inspect
import re
import sys

import pytest

from refeed.config import ConfigError
from refeed.objectives import OBJECTIVES, BatchKind, Head, Needs, build


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_objective_contract(name):
    cls = OBJECTIVES[name]
    doc = sys.modules[cls.__module__].__doc__ or ""
    assert re.search(r"https?://\S+", doc), f"{name}: module docstring cites no URL"
    assert dataclasses.is_dataclass(cls.Config)
    obj = build(name)  # every field has a default
    assert isinstance(cls.batch_kind, BatchKind) and isinstance(cls.needs, Needs) and isinstance(obj.needs, Needs)
    assert isinstance(obj.needs.head, Head)
    assert all(isinstance(c, str) for c in obj.needs.extra_columns)
    if obj.needs.head is Head.SCORE:
        assert callable(getattr(obj, "reward", None)) and obj.needs.num_heads >= 1
    assert len(inspect.getsource(sys.modules[cls.__module__]).splitlines()) <= 200
    with pytest.raises(ConfigError, match="unknown config key 'objective.no_such_key'"):
        build(name, {"no_such_key": 1})


def test_unknown_objective_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown objective 'dpx'.*dpo"):
        build("dpx")


def test_needs_is_the_one_declared_capability_value():
    """No objective declares a capability outside ``needs`` (the loop reads nothing else), and contradictory
    needs are refused where they are declared."""
    fields = {f.name for f in dataclasses.fields(Needs)} | {"needs_reference", "head"}
    for cls in OBJECTIVES.values():
        stray = {a for a in (*vars(cls), *vars(build(cls.name))) if a in fields}
        assert not stray, f"{cls.name}: {stray} outside needs"
    assert build("dpo").needs == Needs(reference=True) and build("sft").needs == Needs()
    with pytest.raises(ValueError, match="score-head objective"):
        Needs(head=Head.SCORE, reference=True)
    with pytest.raises(ValueError, match="needs staged=True"):
        Needs(refresh_reference=True)
