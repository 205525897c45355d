"""A run killed with SIGKILL mid-way and resumed from its checkpoint continues exactly."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.train.conftest import read_metrics

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "dpo.yaml"


@pytest.mark.slow
def test_killed_run_resumes_with_the_same_loss_trajectory(tiny_model_dir, pairs_file, tmp_path):
    args = [sys.executable, "-m", "refeed", "train", str(RECIPE), "--data", str(pairs_file),
            f"model.path={tiny_model_dir}", "train.max_steps=16", "train.batch_size=4", "train.lr=1e-3",
            "train.checkpoint_every=4", "train.keep_checkpoints=0", f"run_root={tmp_path}"]
    full = subprocess.run([*args, "name=full"], capture_output=True, text=True, timeout=300)
    assert full.returncode == 0, full.stderr[-3000:]

    victim = subprocess.Popen([*args, "name=killed"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "killed" / "checkpoint-4"
    deadline = time.time() + 240
    while not ckpt.is_dir() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert ckpt.is_dir(), "the run never wrote its first checkpoint"

    resumed = subprocess.run([*args, "name=killed", "--resume", str(ckpt)],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = read_metrics(tmp_path / "full"), read_metrics(tmp_path / "killed")
    assert [r["step"] for r in b] == list(range(1, 17))  # no step lost, none logged twice
    for x, y in zip(a, b, strict=True):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-6, abs=1e-7), x["step"]
        assert y["lr"] == pytest.approx(x["lr"], rel=1e-9)


def test_resume_from_a_directory_that_is_no_checkpoint_is_refused(tiny_model_dir, pairs_file, tmp_path):
    from click.testing import CliRunner

    from refeed.cli import main

    res = CliRunner().invoke(main, ["train", str(RECIPE), "--data", str(pairs_file), f"model.path={tiny_model_dir}",
                                    "--resume", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "does not exist" in res.output


@pytest.mark.slow
def test_staged_run_resumes_inside_a_later_stage_with_that_stages_reference(tiny_model_dir, tmp_path):
    """Curry-DPO (iterative): stage 1's reference is the policy at the end of stage 0. A run stopped
    in stage 1 and resumed from its checkpoint (fresh process state, fresh model) must log the same
    losses as the uninterrupted run, so the per-stage reference must come back from the run's cache."""
    from refeed.models import load
    from refeed.objectives import build
    from refeed.train.loop import TrainConfig, train

    rows = [{"prompt": f"Greet {n}.", "chosen": "hi", "rejected": r, "stage": s}
            for s, r in ((0, "go away"), (1, "yo")) for n in range(16)]
    cfg = TrainConfig(lr=1e-3, batch_size=4, checkpoint_every=2, keep_checkpoints=0)
    objective = build("curry_dpo", {"beta": 0.5})
    model, tok = load(tiny_model_dir)
    full = train(model, tok, rows, objective, cfg, run_dir=tmp_path / "full")
    assert [r["stage"] for r in full.history] == [0] * 4 + [1] * 4  # stage 0 first, whole
    assert (tmp_path / "full" / "reference_logps-stage1.pt").is_file()

    model, tok = load(tiny_model_dir)
    train(model, tok, rows, objective, cfg, run_dir=tmp_path / "cut", progress=lambda step, total, rec: step == 6)
    model, tok = load(tiny_model_dir)
    rest = train(model, tok, rows, objective, cfg, run_dir=tmp_path / "cut", resume_from=tmp_path / "cut" / "checkpoint-6")
    assert [r["step"] for r in rest.history] == [7, 8]
    for x, y in zip(full.history[6:], rest.history, strict=True):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-6, abs=1e-7)
