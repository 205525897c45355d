"""`refeed train` on a user's own data: the tiny-model warning, the .eval file beside --data, the table."""

import json

import pytest


def _cached_base(warm_model_dir, root):
    """Put the warm tiny model where `refeed pretrain` caches its base model, so no pretraining runs."""
    import shutil

    from refeed.pipelines.pretrain import PretrainConfig

    cfg = PretrainConfig(out_root=str(root))
    shutil.copytree(warm_model_dir, cfg.model_dir())
    (cfg.model_dir().parent / "pretrain.json").write_text(json.dumps({"dev_accuracy": 0.3, "steps": 1, "seconds": 1}))
    return [f"pretrain.out_root={root}"]


@pytest.mark.slow
def test_foreign_data_warns_names_model_path_and_measures_on_the_eval_file(warm_model_dir, tmp_path):
    from click.testing import CliRunner

    from refeed.cli import main

    def rows(names):
        return "".join(json.dumps({"prompt": [{"role": "user", "content": f"Greet {n}."}], "chosen": f"Hello {n}!",
                                   "rejected": "Go."}) + "\n" for n in names)

    data = tmp_path / "pairs.jsonl"
    data.write_text(rows(["ann", "bob", "cy", "dee"]))
    (tmp_path / "pairs.eval.jsonl").write_text(rows(["eve", "fay", "gus"]))  # what `refeed build --split-by prompt` writes
    runs = tmp_path / "runs"
    res = CliRunner().invoke(main, ["train", "recipes/dpo.yaml", "--data", str(data), *_cached_base(warm_model_dir, tmp_path),
                                    "train.max_steps=2", "train.batch_size=2", f"run_root={runs}"])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "warning:" in out and "model.path=" in out
    assert "held-out preference_accuracy on eval rows, before and after" in out
    (run,) = runs.iterdir()
    h = json.loads((run / "summary.json").read_text())["heldout"]
    assert h["n"] == 3 and h["split"] == "eval rows" and 0 <= h["before"] <= 1


def test_a_named_run_into_a_used_directory_is_refused_and_an_unnamed_one_gets_a_suffix(tmp_path, monkeypatch):
    """A new run never writes into a directory that holds another run's files (its store would train on both
    runs' simulated feedback): a named one is refused before any work, an unnamed one gets a suffix; resume
    reuses it."""
    from types import SimpleNamespace

    from refeed.config import ConfigError
    from refeed.pipelines.train_job import TrainJobConfig, make_run_dir
    dpo = SimpleNamespace(name="dpo")
    first = make_run_dir(TrainJobConfig(run_root=str(tmp_path), name="mine"), dpo, None)
    assert first == tmp_path / "mine" and make_run_dir(TrainJobConfig(run_root=str(tmp_path), name="mine"), dpo, None) == first
    (first / "feedback.db").write_text("")  # a run happened here
    with pytest.raises(ConfigError, match=r"already holds a run: resume it .*choose another name="):
        make_run_dir(TrainJobConfig(run_root=str(tmp_path), name="mine"), dpo, None)
    assert make_run_dir(TrainJobConfig(run_root=str(tmp_path), name="mine"), dpo, first / "checkpoint-2") == first
    monkeypatch.setattr("time.strftime", lambda fmt: "20261202-070000")  # two unnamed runs in one second
    a = make_run_dir(TrainJobConfig(run_root=str(tmp_path)), dpo, None)
    (a / "metrics.jsonl").write_text("")
    b = make_run_dir(TrainJobConfig(run_root=str(tmp_path)), dpo, None)
    assert (a.name, b.name) == ("dpo-20261202-070000", "dpo-20261202-070000-2")
