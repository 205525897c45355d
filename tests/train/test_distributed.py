"""Two CPU processes (DDP over gloo, launched by torchrun) match one process on the same global batch."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.train.conftest import read_metrics

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "dpo.yaml"


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["dpo", "bradley_terry"])  # the LM head, and a reward model's score head
def test_two_processes_match_one_on_the_same_global_batch(objective, tiny_model_dir, pairs_file, tmp_path):
    recipe = RECIPE
    if objective != "dpo":
        recipe = tmp_path / f"{objective}.yaml"
        recipe.write_text(f"objective:\n  name: {objective}\n")
    common = [str(recipe), "--data", str(pairs_file), f"model.path={tiny_model_dir}", "train.max_steps=4",
              f"run_root={tmp_path}", "train.checkpoint_every=0", "train.lr=1e-3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = [sys.executable, "-m", "refeed", "train", *common, "train.batch_size=8", "name=single"]
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    multi = [torchrun, "--nproc_per_node", "2", "--master_port", "29533", "-m", "refeed", "train", *common,
             "train.batch_size=4", "name=ddp"]
    for cmd in (single, multi):
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
    one, two = read_metrics(tmp_path / "single"), read_metrics(tmp_path / "ddp")
    assert [r["step"] for r in two] == [1, 2, 3, 4]  # one process wrote the log, once per step
    for a, b in zip(one, two, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)
    assert one[-1]["loss"] != pytest.approx(one[0]["loss"])  # the model did train
    if objective == "bradley_terry":  # the process that saved the run wrote the trained head
        assert (tmp_path / "ddp" / "model" / "score_head.safetensors").is_file()
