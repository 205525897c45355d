"""Bad input is refused with a clear message and exit code 2, before any training starts."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

from refeed.cli import main


@pytest.mark.parametrize(
    "args, message",
    [
        (["demo", "pretrain.task.name=chess"], "unknown task 'chess'"),
        (["demo", "model=/nonexistent/model-dir"], "model directory '/nonexistent/model-dir' does not exist"),
        (["demo", "train.lrr=0.1"], "unknown config key 'train.lrr'. Did you mean 'lr'?"),
        (["demo", "objective.name=nope"], "unknown objective 'nope'"),
        (["demo", "objective.bta=2"], "unknown config key 'objective.bta'"),
        (["demo", "train.batch_size=0"], "train.batch_size must be >= 1"),
        (["pretrain", "target_acc=0.5"], "unknown config key 'target_acc'. Did you mean 'target_accuracy'?"),
        (["pretrain", "task.name=chess"], "unknown task 'chess'"),
    ],
)
def test_bad_input_is_refused_with_a_message(args, message, tmp_path):
    result = CliRunner().invoke(main, [*args, f"run_root={tmp_path}"] if args[0] == "demo" else [*args, f"out_root={tmp_path}"])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not list(tmp_path.glob("base-*/model"))  # nothing was trained


def test_every_command_has_help_with_an_example():
    for name, cmd in main.commands.items():
        res = CliRunner().invoke(main, [name, "--help"])
        assert res.exit_code == 0, name
        if not isinstance(cmd, type(main)):  # groups list their sub-commands instead
            assert "Example:" in res.output, f"`refeed {name} --help` has no example"


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "refeed", "--help"], capture_output=True, text=True, check=True)
    assert "demo" in out.stdout


@pytest.mark.parametrize(
    "args",
    [["demo", "--model", "/nonexistent/m"], ["demo", "model=/nonexistent/m"],
     ["train", "recipes/dpo.yaml", "--model", "/nonexistent/m"], ["train", "recipes/dpo.yaml", "model.path=/nonexistent/m"]],
)
def test_one_model_option_on_demo_train_and_serve(args, tmp_path):
    """--model PATH everywhere; demo's old `model=` still works with a warning, train's recipe key too."""
    res = CliRunner().invoke(main, [*args, f"run_root={tmp_path}"])
    assert res.exit_code == 2 and "model directory '/nonexistent/m' does not exist" in res.output, res.output
    assert ("`model=/nonexistent/m` is deprecated; use --model /nonexistent/m" in " ".join(res.output.split())) == (
        "model=/nonexistent/m" in args)
    for name in ("demo", "train", "serve"):
        assert "--model PATH" in CliRunner().invoke(main, [name, "--help"]).output
