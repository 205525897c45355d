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
