"""The main job end to end, as `make demo` runs it: the model must get better from feedback."""

import json
import subprocess
import sys
import time

import pytest


@pytest.mark.slow
def test_demo_end_to_end_improves_heldout_accuracy(tmp_path):
    cmd = [sys.executable, "-m", "refeed", "demo", "--json", f"run_root={tmp_path}", f"pretrain.out_root={tmp_path}"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    s = json.loads(out.stdout.strip().splitlines()[-1])
    assert 0.2 <= s["accuracy_before"] <= 0.7, s  # the base model is imperfect on purpose
    assert s["accuracy_after"] - s["accuracy_before"] >= 0.05, s
    assert s["pairs"] > 100 and s["train_steps"] > 0 and s["seconds"] > 0
    run = tmp_path / s["run_dir"] if not s["run_dir"].startswith("/") else __import__("pathlib").Path(s["run_dir"])
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "report.html", "loss.png", "margin.png",
                 "accuracy.png", "feedback.db", "model/config.json"):
        assert (run / name).is_file(), name
    html = (run / "report.html").read_text()
    assert 'src="loss.png"' in html and 'src="accuracy.png"' in html
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == s["train_steps"] and "rewards/margin" in steps[-1]
    # The simulated feedback sits in a refeed store; the pairs trained on are what the builder makes of it.
    from refeed.datasets import preference_pairs
    from refeed.store import Store

    store = Store(f"sqlite:///{run / 'feedback.db'}")
    stats = store.stats()
    assert stats["interactions"] == s["interactions"] and stats["feedback"] == s["feedback"]
    assert stats["feedback_by_kind"]["preference"] >= s["pairs"]  # duplicate pairs collapse into one row
    assert preference_pairs(store, sources=["preference"]).num_rows == s["pairs"]

    # The base model is cached: pretraining the same config again is instant and says so.
    from refeed.pipelines.pretrain import PretrainConfig, pretrain

    t = time.perf_counter()
    again = pretrain(PretrainConfig(out_root=str(tmp_path)))
    assert again.cached and time.perf_counter() - t < 5
