"""The ``small`` base under the demo and one recipe of every objective family, picked with one key.

Each run says ``pretrain.preset=small`` and nothing else about the model: ``refeed train`` / ``refeed demo``
pretrain the small base (the word-piece tokenizer, the 1,024-position Llama, the feedback prior) through the
same path a user takes, then sample it, simulate feedback, train and evaluate held out. The pretrain is cut
to a few steps (the full one is ``bench/base_models.py``'s) and shared through its cache, so the runs check
that everything fits the small base's tokenizer, template and context, not that it learns.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
# One recipe per family of the registry (refeed.objectives): SFT, reward models, preferences (paired and
# unpaired), online.
FAMILIES = ["sft", "bradley_terry", "dpo", "kto", "grpo"]
TASK = ["pretrain.task.name=arithmetic", "pretrain.task.levels=[1,2]", "pretrain.task.train_size=400",
        "pretrain.task.dev_size=20", "pretrain.task.test_size=40"]
PRETRAIN = ["pretrain.preset=small", "pretrain.max_steps=40", "pretrain.eval_every=40", "pretrain.dev_prompts=4",
            "pretrain.batch_size=16", "pretrain.lr=2e-3", "pretrain.prior.steps=4", "pretrain.prior.rows=64"]
RUN = ["data.sampling.prompts=8", "data.sampling.max_new_tokens=4", "data.sampling.preference_by=grade",
       "train.max_steps=2", "train.batch_size=2", "eval.prompts=8", "eval.rm_prompts=8", "eval.max_new_tokens=4",
       "eval.every=2", "eval.dev_prompts=4"]


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    return tmp_path_factory.mktemp("small-bases")


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_a_recipe_of_every_family_runs_on_small(name, bases, tmp_path):
    from click.testing import CliRunner

    from refeed.cli import main

    runs = tmp_path / "runs"
    res = CliRunner().invoke(main, ["train", str(RECIPES / f"{name}.yaml"), *PRETRAIN, *TASK,
                                    f"pretrain.out_root={bases}", *RUN, f"run_root={runs}"])
    assert res.exit_code == 0, res.output
    (run,) = runs.iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["data"].startswith("simulated:") and len((run / "metrics.jsonl").read_text().splitlines()) == 2
    assert summary["heldout"]["n"] > 0, summary["heldout"]
    (model_dir,) = Path(bases).glob("base-*/model")  # every run reused the one small base (same cache key)
    assert summary["base_model"] == str(model_dir)
    cfg = json.loads((model_dir / "config.json").read_text())
    assert cfg["max_position_embeddings"] == 1024 and cfg["hidden_size"] == 256, cfg
    assert json.loads((model_dir / "prior.json").read_text())["steps"] == 4


@pytest.mark.slow
def test_the_demo_runs_on_small(bases, tmp_path):
    from click.testing import CliRunner

    from refeed.cli import main

    res = CliRunner().invoke(main, ["demo", "--json", *PRETRAIN, *TASK, f"pretrain.out_root={bases}",
                                    "sampling.prompts=200", "sampling.max_new_tokens=4", "sampling.preference_by=grade", "train.epochs=1",
                                    f"run_root={tmp_path}"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.output.strip().splitlines()[-1])
    assert s["train_steps"] > 0 and 0 <= s["accuracy_after"] <= 1, s
    assert json.loads((Path(s["base_model"]) / "config.json").read_text())["max_position_embeddings"] == 1024, s
