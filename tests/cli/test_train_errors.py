"""`refeed train` refuses bad input with a message that names the fix (exit code 2), before training."""

import json

import pytest
from click.testing import CliRunner

from refeed.cli import main


@pytest.fixture
def thumbs_file(tmp_path):
    path = tmp_path / "thumbs.jsonl"
    path.write_text("".join(json.dumps({"prompt": "2+2?", "completion": c, "label": lab}) + "\n"
                            for c, lab in (("4", 1), ("5", 0)) * 4))
    return path


@pytest.mark.parametrize(
    "args, message",
    [
        (["objective.name=nope"], "unknown objective 'nope'. Available: binary_rm, bradley_terry"),
        (["objective.bta=2"], "unknown config key 'objective.bta'"),
        (["train.lrr=0.1"], "unknown config key 'train.lrr'. Did you mean 'lr'?"),
        # thumbs rows for a pair objective: the missing columns and the builder that makes them
        ([], "the dataset lacks ['chosen', 'rejected']"),
        ([], "refeed build pairs"),
        (["objective.name=causal_rm", "objective.beta=null"], "unknown config key 'objective.beta'"),
        (["model.quantization=4bit"], "trains adapters only: set model.lora.r"),
        (["objective.name=kto", "model.quantization=4bit", "model.lora.r=8", "train.device=cpu"], "(QLoRA) needs a CUDA GPU"),
    ],
)
def test_bad_train_input_is_refused_with_the_fix(args, message, thumbs_file, tiny_model_dir, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("objective:\n  name: dpo\n")  # overrides switch the objective without stale keys
    res = CliRunner().invoke(main, ["train", str(recipe), "--data", str(thumbs_file),
                                    f"model.path={tiny_model_dir}", f"run_root={tmp_path}", *args])
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split()), res.output  # click wraps long lines
    assert not list(tmp_path.glob("*/model"))  # nothing was trained


def test_a_column_missing_from_one_row_names_the_row(tiny_model_dir, tmp_path):
    path = tmp_path / "c3po.jsonl"
    rows = [{"prompt": "p", "chosen": "a", "rejected": "b", "scope": 0}] * 3 + [{"prompt": "p", "chosen": "a", "rejected": "b", "scope": None}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = CliRunner().invoke(main, ["train", "recipes/c3po.yaml", "--data", str(path),
                                    f"model.path={tiny_model_dir}", f"run_root={tmp_path}"])
    assert res.exit_code == 2 and "row 3: column 'scope' must be a number" in res.output, res.output
