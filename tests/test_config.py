from dataclasses import dataclass, field
from enum import StrEnum

import pytest

from refeed.config import ConfigError, from_dict, load, parse_overrides, to_dict


class Mode(StrEnum):
    A = "a"
    B = "b"


@dataclass(frozen=True)
class Inner:
    lr: float = 0.1
    steps: int = 3
    mode: Mode = Mode.A


@dataclass(frozen=True)
class Outer:
    inner: Inner = field(default_factory=Inner)
    name: str = "x"
    levels: tuple[int, ...] = (1, 2)
    flag: bool = False


def test_overrides_patch_nested_fields_and_coerce_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  lr: 0.5\nname: y\n")
    cfg = load(Outer, path, ["inner.steps=7", "inner.mode=b", "levels=[3, 4]", "flag=true"])
    assert cfg == Outer(Inner(0.5, 7, Mode.B), "y", (3, 4), True)
    assert to_dict(cfg)["inner"]["mode"] == "b"


def test_unknown_key_names_the_key_and_suggests_the_close_one():
    with pytest.raises(ConfigError, match=r"unknown config key 'inner.stpes'.*Did you mean 'steps'"):
        from_dict(Outer, {"inner": {"stpes": 1}})


@pytest.mark.parametrize(
    "data, msg",
    [
        ({"inner": {"steps": "many"}}, "inner.steps: expected an integer"),
        ({"inner": {"mode": "c"}}, "inner.mode: 'c' is not one of 'a', 'b'"),
        ({"flag": "perhaps"}, "flag: expected true or false"),
        ({"inner": 3}, "inner: expected a mapping"),
    ],
)
def test_wrong_types_are_refused_with_the_path(data, msg):
    with pytest.raises(ConfigError, match=msg):
        from_dict(Outer, data)


def test_malformed_override_and_missing_file():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["train.lr"])
    with pytest.raises(ConfigError, match="does not exist"):
        load(Outer, "/nonexistent/cfg.yaml")

