"""`refeed eval friction` end to end on the tiny model: a table or JSON, and bad input refused in one line."""

import json

from click.testing import CliRunner

from refeed.cli import main


def test_friction_prints_the_curve_target_and_intervals(tiny_model_dir):
    args = ["eval", "friction", str(tiny_model_dir), "--task", "arithmetic", "--prompts", "12", "--turns", "3",
            "--max-new-tokens", "4"]
    res = CliRunner().invoke(main, [*args, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert out["n"] == 12 and len(out["cumulative_accuracy"]) == 3 and out["temperatures"] == [0.0] * 3
    assert set(out["friction"]) == {"value", "ci", "n"} and out["source"] == "critique"
    res = CliRunner().invoke(main, [*args, "--progressive", "--reject"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())  # the console wraps lines to the terminal
    assert "any-correct target" in text and "uptake over try again" in text


def test_friction_refuses_bad_input_before_any_work(tiny_model_dir, tmp_path):
    for args, message in [(["--task", "chess"], "unknown task 'chess'"), (["--turns", "0"], "--turns must be >= 1"),
                          (["--source", "vibes"], "Invalid value for '--source'"),
                          (["--levels", "a,b"], "--levels must be comma-separated integers")]:
        res = CliRunner().invoke(main, ["eval", "friction", str(tiny_model_dir), *args])
        assert res.exit_code == 2 and message in res.output, res.output
    res = CliRunner().invoke(main, ["eval", "friction", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "could not load model" in res.output
