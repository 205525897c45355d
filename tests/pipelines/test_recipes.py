"""Every registered objective has a recipe in ``recipes/``, and ``refeed train`` runs each one.

The fast test loads every recipe through the loader ``refeed train`` uses (``refeed.cli._common.load_config``
over ``TrainJobConfig``) and builds its objective, so an unknown or mistyped key anywhere fails here.
The slow ones run ``refeed train recipes/<name>.yaml`` for 2 steps on the tiny model: once with no
``--data`` (the simulated user's feedback of the kind the objective needs, a held-out before/after table,
the run and its dataset build in the store), once with ``--data rows.jsonl`` in the columns the objective
reads; both check the run directory (and, for reward models, that the saved model scores text through
``refeed.rewards``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from refeed.objectives import OBJECTIVES, Head, build

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def _load(path: Path):
    from refeed.cli._common import load_config
    from refeed.pipelines.train_job import TrainJobConfig

    return load_config(TrainJobConfig, str(path), [])


def test_every_objective_has_a_recipe_that_loads():
    assert not [n for n in OBJECTIVES if not (RECIPES / f"{n}.yaml").is_file()], "objectives without a recipe"
    for path in sorted(RECIPES.glob("*.yaml")):
        name = path.stem
        params = dict(_load(path).objective)  # model / data / train sections: unknown keys refused here
        assert params.pop("name", None) == name, f"{path}: objective.name must be {name!r}"
        assert build(name, params).name == name  # objective keys, checked against its Config by build()
        lines = path.read_text().splitlines()
        header = "\n".join(lines[: next(i for i, line in enumerate(lines) if not line.startswith("#"))])
        assert header, f"{path}: starts with a comment header"
        assert f"refeed train recipes/{name}.yaml" in header, f"{path}: the header gives the command"


def _prompt(n):
    return [{"role": "user", "content": f"Greet {n}."}]


NAMES = ["ann", "bob", "cy", "dee"]


def _rows(name: str) -> list[dict]:
    """Four rows in the columns objective ``name`` reads (the shape its `refeed build` output has)."""
    kind = OBJECTIVES[name].batch_kind.value
    rows = []
    for i, n in enumerate(NAMES):
        row = {"prompt": _prompt(n)}
        if kind == "pair":
            row |= {"chosen": "Hello!", "rejected": "Go."}
        elif kind == "group":
            row |= {"completions": ["Hello!", "Hi.", "Go."]}
        else:
            row |= {"completion": ["Hello! Nice day.", "Go. Bad day."][i % 2]}
        if kind in ("unpaired", "graded"):
            row["label"] = (i + 1) % 2 if kind == "unpaired" else i % 3
        rows.append(row)
    extra = {
        "nft": lambda i: {"correct_rate": 0.5},
        "causal_rm": lambda i: {"observed": i % 3 != 2, "propensity": 0.5},
        "curry_dpo": lambda i: {"stage": i // 2},
        "c3po": lambda i: {"scope": i % 3},
        "fine_grained": lambda i: {"spans": [{"start": 0, "end": 3, "category": "irrelevant", "severity": 1}] * (i % 2)},
    }.get(name, lambda i: {})
    return [r | extra(i) for i, r in enumerate(rows)]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_recipe_trains_two_steps(name, tiny_model_dir, tmp_path):
    from click.testing import CliRunner

    from refeed.cli import main

    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _rows(name)))
    runs = tmp_path / "runs"
    res = CliRunner().invoke(main, [
        "train", str(RECIPES / f"{name}.yaml"), "--data", str(data), f"model.path={tiny_model_dir}",
        "train.max_steps=2", "train.batch_size=2", f"run_root={runs}",
    ])
    assert res.exit_code == 0, res.output
    (run,) = runs.iterdir()
    assert (run / "model").is_dir()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    objective = OBJECTIVES[name]
    if objective.needs.head is Head.SCORE:
        from refeed.rewards import load_reward_model, score

        assert (run / "model" / "score_head.safetensors").is_file()
        rm = load_reward_model(run / "model")
        rewards = score(rm, [_prompt("eve"), _prompt("fay")], ["Hello! Nice day.", "Go. Bad day."])
        assert rewards.shape == (2,) and all(math.isfinite(r) for r in rewards.tolist()), rewards


# Small everything: 8 prompts x 4 answers, 8 held-out prompts, 4 new tokens.
SMALL = ["data.sampling.prompts=8", "data.sampling.max_new_tokens=4", "data.sampling.preference_by=grade",
         "train.max_steps=2", "train.batch_size=2", "eval.prompts=8", "eval.rm_prompts=8", "eval.max_new_tokens=4",
         "eval.every=1", "eval.dev_prompts=4"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_recipe_trains_two_steps_without_data(name, warm_model_dir, tmp_path):
    from click.testing import CliRunner

    from refeed.cli import main
    from refeed.store import Store, provenance
    from tests.pipelines.conftest import task_overrides

    runs = tmp_path / "runs"
    res = CliRunner().invoke(main, ["train", str(RECIPES / f"{name}.yaml"), f"model.path={warm_model_dir}",
                                    *task_overrides(), *SMALL, f"run_root={runs}"])
    assert res.exit_code == 0, res.output
    (run,) = runs.iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["data"].startswith("simulated:") and summary["rows"] >= 2
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    h = summary["heldout"]
    assert "held-out" in res.output, res.output  # the table is printed
    if h["kind"] == "policy":
        assert h["n"] == 8 and set(h) >= {"before", "after", "gain", "gain_ci", "by_difficulty", "answers"}
        assert "Held-out answers before and after" in (run / "report.html").read_text()
    else:
        assert h["n"] > 0 and h["value"] is not None and h["baselines"]
    assert (run / "eval.png").is_file() and len((run / "eval.jsonl").read_text().splitlines()) == 3  # steps 0, 1, 2
    store = Store(f"sqlite:///{run / 'feedback.db'}")
    r = provenance.get_run(store, summary["run_id"])
    assert r["status"] == "finished" and r["metrics"]["heldout"]
    (build_id,) = r["config"]["dataset_builds"]
    used = provenance.members(store, build_id)
    assert used and set(used) <= {f.id for f in store.iter_feedback()}


def test_every_objective_is_in_the_objectives_doc_with_its_columns():
    """docs/objectives.md lists every registered objective with every column its rows need."""
    from refeed.batch.encode import required_columns
    from refeed.objectives import OBJECTIVES, build

    doc = (Path(__file__).resolve().parents[2] / "docs" / "objectives.md").read_text()
    lines = {line.split("|")[1].strip().strip("`"): line for line in doc.splitlines() if line.startswith("| `")}
    assert set(lines) == set(OBJECTIVES)
    for name in OBJECTIVES:
        needed = required_columns(build(name, {}))
        assert all(c in lines[name] for c in needed), (name, needed)
