import json
import random

import pytest


@pytest.fixture
def pairs_file(tmp_path):
    """64 addition preference rows (correct answer chosen) in TRL conversational JSONL."""
    rng = random.Random(0)
    path = tmp_path / "pairs.jsonl"
    with path.open("w") as f:
        for _ in range(64):
            a, b = rng.randint(0, 99), rng.randint(0, 99)
            f.write(json.dumps({"prompt": [{"role": "user", "content": f"What is {a}+{b}?"}],
                                "chosen": str(a + b), "rejected": str(a + b + rng.randint(1, 9))}) + "\n")
    return path


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
