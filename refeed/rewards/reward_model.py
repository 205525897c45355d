"""Score text with a trained reward model: the one function the online loop and the evaluation reuse.

    rm = load_reward_model("runs/bradley_terry-.../model")
    rewards = score(rm, tok, prompts, completions)          # (N,) float tensor, one reward per answer
    dense = score(rm, tok, prompts, completions, dense=True) # list of (T_i,) per-token rewards (span RMs)

A reward model is a ``ScoreModel`` directory (``refeed train`` with a score-head objective writes one):
the causal LM, its head, and which objective trained it. The objective's own ``reward`` turns the head
outputs into the reward (BT: the raw score; binary / CausalRM: P(good); ordinal: the expected level;
fine-grained: per-sentence signed rewards), so training and scoring cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from refeed.batch.collate import collate
from refeed.batch.encode import answer_text, encode_rows
from refeed.objectives import BatchKind, TokenScores, build


@dataclass
class RewardModel:
    model: Any  # refeed.models.score_head.ScoreModel
    tokenizer: Any
    objective: Any  # the objective instance that trained it; its ``reward`` defines the reward

    @property
    def dense(self) -> bool:
        return self.objective.needs.dense_reward


def load_reward_model(path: str | Path, device: str = "cpu", dtype: str = "float32") -> RewardModel:
    """A reward model directory written by ``refeed train`` (score-head objective) -> ``RewardModel``."""
    from refeed.models.loading import load_tokenizer
    from refeed.models.score_head import ScoreModel

    model = ScoreModel.from_pretrained(path, dtype=dtype, device=device).eval()
    objective = build(model.meta["objective"], model.meta.get("objective_config") or {})
    return RewardModel(model, load_tokenizer(path), objective)


@torch.no_grad()
def score(
    rm: RewardModel,
    prompts: Sequence[Any],
    completions: Sequence[str],
    *,
    batch_size: int = 16,
    max_length: int = 512,
    dense: bool = False,
    principles: Sequence[str] | None = None,
) -> torch.Tensor | list[torch.Tensor]:
    """Rewards of ``completions`` (text) answering ``prompts`` (chat messages or text).

    A principle-conditioned model (RLBFF: ``binary_rm`` with ``principle: true``) needs ``principles``,
    one per answer: the reward is then P(the answer satisfies that principle).

    Returns:
        (N,) sequence rewards; with ``dense=True`` (span reward models) a list of per-token rewards
        over each completion's tokens (EOS included), the segment ends being its sentence ends.
    """
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
    if dense and not rm.dense:
        raise ValueError(f"objective '{rm.objective.name}' gives one reward per answer; call score(..., dense=False)")
    conditioned = rm.objective.needs.principle_conditioned
    if conditioned != (principles is not None):
        raise ValueError("this reward model is conditioned on a principle: pass principles=[...], one per answer"
                         if conditioned else "this reward model takes no principles")
    if principles is not None and len(principles) != len(prompts):
        raise ValueError(f"{len(principles)} principles for {len(prompts)} answers")
    kind = BatchKind.SPANS if rm.dense else BatchKind.SFT
    heads = rm.model.num_heads
    device = next(rm.model.parameters()).device
    pad = rm.tokenizer.pad_token_id if rm.tokenizer.pad_token_id is not None else rm.tokenizer.eos_token_id
    seq: list[torch.Tensor] = []  # one () reward per answer
    per_token: list[torch.Tensor] = []  # dense models: one (T_i,) per answer
    for start in range(0, len(prompts), batch_size):
        part = range(start, min(start + batch_size, len(prompts)))
        rows = [{"prompt": prompts[i], "completion": completions[i], "principle": principles[i] if conditioned else None,
                 "segments": _all_sentence_ends(answer_text(completions[i]), heads) if rm.dense else None} for i in part]
        batch = collate(encode_rows(rm.tokenizer, rows, kind, max_length, principle=conditioned), pad, heads)
        values, mask = rm.model(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                                batch["completion_mask"].to(device))
        extras = {k: v.to(device) for k, v in batch.items() if k.startswith("segment_")}
        r = rm.objective.reward(TokenScores(values=values, mask=mask), extras)  # (b,) or (b, T)
        if rm.dense:
            tokens = [r[i][mask[i]].float().cpu() for i in range(r.shape[0])]
            per_token += tokens
            seq += [t.sum() for t in tokens]
        else:
            seq += list(r.float().cpu().unbind())
    if dense:
        return per_token
    return torch.stack(seq) if seq else torch.zeros(0)


def _all_sentence_ends(completion: str, heads: int) -> list[dict]:
    from refeed.batch.segments import sentence_ends

    return [{"end": e, "head": h, "label": 1} for e in sentence_ends(completion) for h in range(heads)]
