"""Checkpoints that resume exactly: weights, optimizer, scheduler, RNG states and data position.

Layout: ``run_dir/checkpoint-<step>/`` with ``model/`` (save_pretrained), ``trainer.pt`` (optimizer,
scheduler, torch / python RNG states, step, the loop's extra state) and ``config.json`` (the resolved train config). The data
position is the step: the loop replays its seeded shuffles and skips the steps already taken, which
costs index arithmetic only. The reference log-probs are cached once per run in
``run_dir/reference_logps.pt`` and reused on resume, so the reference stays the *original* model.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import torch

_CKPT = re.compile(r"checkpoint-(\d+)$")


def save(path: Path, model, optimizer, scheduler, step: int, rng: random.Random, config: dict[str, Any],
         extra: dict[str, Any] | None = None) -> Path:
    """Write the checkpoint atomically; ``extra`` is more resumable state (the online loop's generator)."""
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp / "model")
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "python_rng": rng.getstate(),
        "extra": extra,
    }
    torch.save(state, tmp / "trainer.pt")
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)  # a checkpoint directory either exists whole or not at all
    return path


def load_state(path: Path) -> dict[str, Any]:
    if not (path / "trainer.pt").is_file():
        raise FileNotFoundError(f"'{path}' is not a refeed checkpoint (no trainer.pt); pass run_dir/checkpoint-<step>")
    return torch.load(path / "trainer.pt", weights_only=False)


def load_weights(model, path: Path) -> None:
    """Copy the checkpoint's weights into ``model`` (same architecture; LoRA adapters and score heads included)."""
    from safetensors.torch import load_file

    from refeed.models.score_head import HEAD_FILE, ScoreModel

    if isinstance(model, ScoreModel):
        model.load_head(path / "model")
        model = model.lm
    files = sorted(f for f in (path / "model").glob("*.safetensors") if f.name != HEAD_FILE)
    if not files:
        raise FileNotFoundError(f"no weights in '{path / 'model'}'")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(f))
    if hasattr(model, "peft_config"):
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, state)
        return
    missing, unexpected = model.load_state_dict(state, strict=False)
    # tied weights (lm_head = embeddings) are saved once; anything else missing is an error
    missing = [m for m in missing if m not in getattr(model, "_tied_weights_keys", None) or []]
    missing = [m for m in missing if not m.endswith("lm_head.weight")]
    if missing or unexpected:
        raise ValueError(f"checkpoint does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")


def latest(run_dir: Path) -> Path | None:
    found = [(int(m.group(1)), p) for p in run_dir.glob("checkpoint-*") if (m := _CKPT.search(p.name))]
    return max(found)[1] if found else None
