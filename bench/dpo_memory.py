"""Where refeed's peak RSS goes on the realistic DPO workload of ``bench/dpo_vs_trl.py`` (the same model, rows and
config as its refeed child), glibc only.

    .venv/bin/python bench/dpo_memory.py                 # stages, saved-for-backward bytes, the peak's make-up
    .venv/bin/python bench/dpo_memory.py --no-lean       # transformers' own MLP / RMSNorm in the packed forward
    .venv/bin/python bench/dpo_memory.py --trim          # malloc_trim(0) between each forward and its backward
    MALLOC_MMAP_THRESHOLD_=131072 .venv/bin/python bench/dpo_memory.py   # every tensor >= 128 KiB mmapped

Prints RSS and peak RSS (``VmHWM``) after loading, after the reference pass and at some steps, with glibc's
``mallinfo2``: ``heap`` is the main heap's extent, ``used`` the bytes malloc has handed out and not got back,
``free`` the rest of the extent (freed blocks whose pages glibc keeps: fragmentation), ``mmap`` blocks mapped
one by one. A thread samples them every 0.5 ms and reports their state at the highest RSS; what the heap and
mmap do not hold is the libraries' code and data and Python's own arenas. The first micro-batch's tensors saved
for backward are counted with ``torch.autograd.graph.saved_tensors_hooks`` (unique storages).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dpo_vs_trl  # noqa: E402  (the benchmark's rows and model)

MIB = 2**20


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]


LIBC = ctypes.CDLL("libc.so.6")
LIBC.mallinfo2.restype = _MallInfo2


def _status() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def _heap() -> dict[str, int]:
    m = LIBC.mallinfo2()
    return {"heap": m.arena, "used": m.uordblks, "free": m.fordblks, "mmap": m.hblkhd}


def _line(label: str) -> None:
    s, h = _status(), _heap()
    print(f"{label:18s} RSS {s['VmRSS'] // MIB:4d}  peak {s['VmHWM'] // MIB:4d}  |  heap {h['heap'] // MIB:4d}  "
          f"used {h['used'] // MIB:4d}  free {h['free'] // MIB:4d}  mmap {h['mmap'] // MIB:3d}", flush=True)


class _Sampler(threading.Thread):
    """The heap's state at the highest RSS seen (the training thread releases the GIL in torch's kernels)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak: dict[str, int] = {"rss": 0}
        self.page = os.sysconf("SC_PAGE_SIZE")

    def run(self) -> None:
        while True:
            rss = int(Path("/proc/self/statm").read_text().split()[1]) * self.page
            if rss > self.peak["rss"]:
                self.peak = {"rss": rss, **_heap()}
            time.sleep(0.0005)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--no-lean", action="store_true", help="transformers' own MLP and RMSNorm (refeed.batch.lean off)")
    ap.add_argument("--trim", action="store_true", help="malloc_trim(0) between each forward and its backward")
    a = ap.parse_args()
    _line("torch imported")
    torch.set_num_threads(1)
    import refeed.batch.packed as packed
    import refeed.train.loop as loop
    import refeed.train.step as step
    from refeed.models.tiny import write_tiny_model
    from refeed.objectives import build

    if a.no_lean:
        packed.lean_layers = lambda model: contextlib.nullcontext()
    model_dir = write_tiny_model(Path(os.environ.get("TMPDIR", "/tmp")) / "refeed-dpo-memory")
    from refeed.models import load

    model, tok = load(model_dir)
    _line("loaded")
    reference_logps, micro_loss, update = loop.reference_logps, loop._micro_loss, step.Update.__call__
    saved: dict[int, int] = {}
    steps = [0]

    def count(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    def reference(*args, **kw):
        out = reference_logps(*args, **kw)
        _line("after reference")
        return out

    def forward(*args, **kw):
        hooks = torch.autograd.graph.saved_tensors_hooks(count, lambda t: t) if not steps[0] else contextlib.nullcontext()
        with hooks:
            out = micro_loss(*args, **kw)
        if a.trim:
            LIBC.malloc_trim(0)
        return out

    def one_step(self, *args, **kw):
        out = update(self, *args, **kw)
        steps[0] += 1
        if steps[0] in (1, 2, 5, 10, 20, 30) or steps[0] == a.steps:
            _line(f"after step {steps[0]}")
        return out

    loop.reference_logps, loop._micro_loss, step.Update.__call__ = reference, forward, one_step
    sampler = _Sampler()
    sampler.start()
    cfg = loop.TrainConfig(lr=1e-4, batch_size=8, max_steps=a.steps, warmup_ratio=0.0, schedule=loop.Schedule.CONSTANT,
                           max_length=256, seed=0, max_grad_norm=1.0)
    t = time.perf_counter()
    loop.train(model, tok, dpo_vs_trl._words(a.steps * 8), build("dpo", {"beta": 0.1}), cfg)
    seconds = time.perf_counter() - t
    p = sampler.peak
    rest = p["rss"] - p["heap"] - p["mmap"]
    print(f"train() {seconds:.1f} s; saved for backward by the first micro-batch: {sum(saved.values()) / MIB:.0f} MiB")
    print(f"at the highest RSS ({p['rss'] // MIB} MiB): heap {p['heap'] // MIB} (used {p['used'] // MIB}, free "
          f"{p['free'] // MIB}), mmap {p['mmap'] // MIB}, the rest (libraries, Python arenas) {rest // MIB}")


if __name__ == "__main__":
    main()
