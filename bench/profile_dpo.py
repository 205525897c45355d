"""Where refeed's DPO time goes on the realistic workload of bench/dpo_vs_trl.py (see bench/README.md).

    .venv/bin/python bench/profile_dpo.py                   # packed rows (the default)
    .venv/bin/python bench/profile_dpo.py --layout cache    # the prompt's KV cache shared by both answers
    .venv/bin/python bench/profile_dpo.py --layout padded   # one right-padded forward for all sequences

Trains ``--steps`` DPO steps of batch 8 (max_length 256, 1 thread) on the built-in tiny Llama under
cProfile (the loop's stages, Python included) and then profiles 2 more update steps with torch.profiler
(the top operators by self time). Prints the decoder positions per micro-batch: real tokens vs the
positions the layout computes (padding included).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dpo_vs_trl import _words  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layout", choices=["packed", "cache", "padded"], default="packed")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    import torch

    from refeed.batch.collate import collate, collate_shared
    from refeed.batch.encode import encode_rows
    from refeed.models import load
    from refeed.models.tiny import write_tiny_model
    from refeed.objectives import build
    from refeed.objectives.base import BatchKind
    from refeed.train.loop import Schedule, TrainConfig, train

    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model, tok = load(write_tiny_model(Path(tmp) / "tiny"))
    rows = _words(a.steps * 8)
    enc = encode_rows(tok, rows, BatchKind.PAIR, 256)
    real = padded = cache = 0
    for s in range(0, len(enc), 8):
        b = enc[s : s + 8]
        real += sum(len(r.prompt) + sum(map(len, r.answers)) for r in b)
        padded += collate(b, 0)["input_ids"].numel()
        sb = collate_shared(b, 0)
        cache += sb["prompt_ids"].numel() + sb["answer_ids"].numel()
    n = len(enc) // 8
    print(f"decoder positions per micro-batch: real tokens {real / n:.0f}; packed {real / n:.0f}, "
          f"KV-cache layout {cache / n:.0f}, padded {padded / n:.0f}")
    cfg = TrainConfig(lr=1e-4, batch_size=8, max_steps=a.steps, warmup_ratio=0.0, schedule=Schedule.CONSTANT,
                      max_length=256, seed=0, share_prompt=a.layout != "padded", pack=a.layout == "packed")
    objective = build("dpo", {"beta": 0.1})
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    train(model, tok, rows, objective, cfg)
    prof.disable()
    seconds = time.perf_counter() - t
    print(f"{a.layout}: {a.steps} steps in {seconds:.2f} s = {a.steps * 8 / seconds:.1f} pairs/s (reference pass included)")
    stats = pstats.Stats(prof)
    stages = {"reference pass": "reference_logps", "forward (policy)": "_micro_loss", "backward": "backward",
              "optimizer step": "step", "collate": "collate_shared" if a.layout != "padded" else "collate",
              "encode (tokenize)": "encode_for"}
    by_name: dict[str, float] = {}
    for (file, _, func), (_, _, _, cum, _) in stats.stats.items():
        for label, name in stages.items():
            if func == name and ("refeed" in file or label in ("backward", "optimizer step")):
                if label == "optimizer step" and "optim" not in file:
                    continue
                if label == "backward" and "_tensor.py" not in file:
                    continue
                by_name[label] = max(by_name.get(label, 0.0), cum)
    for label in stages:
        print(f"  {label:20s} {by_name.get(label, 0.0):7.2f} s  {100 * by_name.get(label, 0.0) / seconds:5.1f}%")
    from torch.profiler import ProfilerActivity, profile

    cfg2 = TrainConfig(**{**cfg.__dict__, "max_steps": 2})
    with profile(activities=[ProfilerActivity.CPU]) as p:
        train(model, tok, rows[:16], objective, cfg2)
    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=48))


if __name__ == "__main__":
    main()
