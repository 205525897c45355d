"""The built-in reward functions on hand-made completions, with TRL's signature: the task verifiers (text and
conversational, answer / example_id / prompt lookup, partial credit), DAPO's overlong shaping and weighted
composites in closed form, user functions by import path and their errors, and ``build_rewards``' specs and
errors. No torch: importing the reward layer loads none."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from refeed.config import ConfigError
from refeed.rewards import build_rewards, composite, load_function, overlong, overlong_penalty, verifier
from refeed.tasks import get_task


def chat(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def said(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def test_verifier_reads_text_and_conversational_completions():
    fn = verifier("arithmetic")
    prompts = [chat("What is 2+3?")] * 3
    assert fn(prompts=prompts, completions=["5", "The answer is 5.", "6"], answer=["5"] * 3) == [1.0, 1.0, 0.0]
    assert fn(prompts=prompts, completions=[said("5"), said("4"), said("")], answer=["5"] * 3) == [1.0, 0.0, 0.0]
    assert fn.__name__ == "verifier"


def test_verifier_finds_the_ground_truth_by_example_id_or_by_prompt():
    ex = get_task("reverse").examples("test")[0]
    word = ex.answer
    fn, partial = verifier(), verifier(partial=True)  # the task read from the prompt itself
    half = word[: len(word) // 2] + "".join("z" if ch != "z" else "y" for ch in word[len(word) // 2 :])
    comps = [word, half, "no"]
    assert fn(prompts=[list(ex.messages)] * 3, completions=comps) == [1.0, 0.0, 0.0]
    assert fn(prompts=[ex.messages[-1]["content"]] * 3, completions=comps, example_id=[ex.id] * 3) == [1.0, 0.0, 0.0]
    got = partial(prompts=[list(ex.messages)] * 3, completions=comps)
    assert got[0] == 1.0 and got[1] == pytest.approx((len(word) // 2) / len(word)) and partial.__name__ == "verifier_partial"


def test_verifier_without_ground_truth_is_an_error_naming_the_prompt():
    with pytest.raises(ValueError, match=r"prompt 0 \('Tell me a joke'\) is not a built-in task's prompt"):
        verifier()(prompts=[chat("Tell me a joke")], completions=["no"])
    with pytest.raises(ValueError, match=r"'What is 999999\+1\?' .* is not in task 'arithmetic'"):
        verifier("arithmetic")(prompts=[chat("What is 999999+1?")], completions=["1000000"])
    with pytest.raises(ValueError, match="example_id 'nope'"):
        verifier("arithmetic")(prompts=[chat("What is 1+1?")], completions=["2"], example_id=["nope"])
    with pytest.raises(ValueError, match="unknown task 'algebra'"):
        verifier("algebra")


def test_overlong_penalty_closed_form():
    # DAPO Eq. 13 with L_max = 10, L_cache = 4: 0 up to 6 tokens, then -1/4 per token, -1 at 10 and beyond
    assert [overlong_penalty(n, 10, 4) for n in (0, 6, 7, 8, 10, 11, 50)] == [0.0, 0.0, -0.25, -0.5, -1.0, -1.0, -1.0]
    fn = overlong(max_length=10, cache=4)
    assert fn(prompts=["p"] * 3, completions=["a"] * 3, completion_ids=[[1] * 5, [1] * 9, [1] * 10]) == [0.0, -0.75, -1.0]
    with pytest.raises(ValueError, match="needs completion_ids"):
        fn(prompts=["p"], completions=["a"])
    with pytest.raises(ValueError, match="0 < cache <= max_length"):
        overlong(max_length=4, cache=8)


def test_composite_is_the_weighted_sum_and_none_only_where_no_part_applies():
    def maybe(prompts, completions, **kw):
        return [None if c == "skip" else 1.0 for c in completions]

    async def length(prompts, completions, **kw):
        return [float(len(c)) for c in completions]

    def never(prompts, completions, **kw):
        return [None] * len(completions)

    sync = composite([(maybe, 2.0), (never, 5.0)])
    assert sync(prompts=["p"] * 2, completions=["ab", "skip"]) == [2.0, None]
    mixed = composite([(maybe, 2.0), (length, -0.5)], name="mix")
    out = mixed(prompts=["p"] * 2, completions=["ab", "skip"])
    assert asyncio.run(out) == [2.0 - 1.0, -2.0] and mixed.__name__ == "mix"

    def several(prompts, completions, **kw):
        return {"a": [1.0] * len(completions), "b": [0.0] * len(completions)}

    with pytest.raises(ValueError, match="part 'several' returned several signals"):
        composite([(several, 1.0)])(prompts=["p"], completions=["x"])


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "myrewards.py").write_text(textwrap.dedent("""
        LIMIT = 3

        def exact_match(prompts, completions, answer, **kwargs):
            return [float(c == a) for c, a in zip(completions, answer)]

        class Scorer:
            @staticmethod
            def short(prompts, completions, **kwargs):
                return [float(len(c) <= LIMIT) for c in completions]
    """))
    (tmp_path / "broken_rewards.py").write_text("import not_a_real_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for m in ("myrewards", "broken_rewards"):
        sys.modules.pop(m, None)


def test_user_functions_load_by_import_path(user_module):
    fn = load_function("myrewards:exact_match")
    assert fn(prompts=["p", "p"], completions=["4", "5"], answer=["4", "4"]) == [1.0, 0.0]
    assert load_function("myrewards:Scorer.short")(prompts=["p"], completions=["abcd"]) == [0.0]


@pytest.mark.parametrize(("path", "error", "message"), [
    ("myrewards.exact_match", ValueError, "expected 'package.module:function'"),
    ("no_such_pkg.mod:fn", ImportError, "no module named 'no_such_pkg'"),
    ("broken_rewards:fn", ImportError, "importing module 'broken_rewards' failed: No module named 'not_a_real_dependency'"),
    ("myrewards:exact", AttributeError, "'myrewards' has no attribute 'exact'; it has Scorer, exact_match"),
    ("myrewards:Scorer.long", AttributeError, "'myrewards:Scorer' has no attribute 'long'"),
    ("myrewards:LIMIT", TypeError, "'LIMIT' is a int, not a function"),
])
def test_import_path_errors_name_the_path_and_why(user_module, path, error, message):
    with pytest.raises(error) as e:
        load_function(path)
    assert f"reward path '{path}'" in str(e.value) and message in str(e.value)


def test_build_rewards_turns_specs_into_named_functions_and_weights(user_module):
    fns, weights = build_rewards([
        "verifier",
        {"name": "verifier", "partial": True, "weight": 0.5},
        {"path": "myrewards:exact_match", "weight": 2},
        {"name": "overlong", "max_length": 10, "cache": 4, "label": "length"},
        {"name": "composite", "parts": [{"name": "verifier"}, {"name": "overlong", "max_length": 10, "cache": 4,
                                                                 "weight": 0.5}]},
        {"name": "verifier"},
    ], task="arithmetic")
    assert [f.__name__ for f in fns] == ["verifier", "verifier_partial", "exact_match", "length", "composite",
                                         "verifier_2"]
    assert weights == [1.0, 0.5, 2.0, 1.0, 1.0, 1.0]
    args = {"prompts": [chat("What is 2+3?")] * 2, "completions": [said("5"), said("7")],
            "completion_ids": [[1] * 3, [1] * 8], "answer": ["5", "5"]}
    assert [f(**args) for f in fns] == [[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, -0.5], [1.0, -0.25], [1.0, 0.0]]
    assert load_function("myrewards:exact_match").__name__ == "exact_match"  # the user's function is not renamed


@pytest.mark.parametrize(("specs", "message"), [
    ([{"name": "verifer"}], "rewards[0]: unknown reward 'verifer'. Built-in rewards: composite, judge, overlong, "
                            "reward_model, verifier"),
    ([{"name": "overlong", "max_length": 8, "cahce": 2}], "rewards[0]: unknown key cahce for reward 'overlong'; "
                                                          "allowed: cache, label, max_length, weight"),
    ([{"name": "overlong", "max_length": 8}], "rewards[0]: reward 'overlong' needs cache"),
    ([{"name": "verifier"}, {"name": "composite", "parts": [{"name": "nope"}]}], "rewards[1].parts[0]: unknown reward 'nope'"),
    ([{"path": "m:f", "task": "x"}], "unknown key task for a user function"),
    ([{"name": "judge", "base_url": "http://x/v1", "model": "m"}], "give exactly one of rubric"),
    ([{"name": "reward_model", "path": "/no/such/dir"}], "'/no/such/dir' is not a directory"),
    ([{"weight": 1}], "give name"),
    ([{"name": "verifier", "weight": "high"}], "weight must be a number"),
    ([], "expected a non-empty list"),
])
def test_build_rewards_errors_name_the_entry_and_the_choices(specs, message):
    with pytest.raises(ConfigError) as e:
        build_rewards(specs)
    assert message in str(e.value)


def test_importing_the_reward_layer_loads_no_torch():
    code = ("import sys, refeed.rewards, refeed.rewards.build, refeed.rewards.judges, refeed.rewards.verifiers; "
            "from refeed.rewards import build_rewards; build_rewards(['verifier', {'name': 'overlong', "
            "'max_length': 4, 'cache': 2}]); assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
