"""Sample answers on a task's train prompts and let the simulated user judge them.

Shared by the demo and by ``refeed train`` when no dataset is given: the result is a list of
interactions and the feedback on them, the same records the store keeps for real users.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from refeed.types import Feedback, FeedbackKind, Interaction


@dataclass(frozen=True)
class SamplingConfig:
    prompts: int = 2000  # train prompts to sample on (0: all of the train split)
    k: int = 4  # answers per prompt
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 8
    batch_size: int = 64  # prompts per generate call
    max_pairs_per_prompt: int = 2  # preferences per prompt (correct beats incorrect; 0: all pairs)


def simulate_feedback(
    model, tok, task, cfg: SamplingConfig, seed: int, model_name: str, tick: Callable[[int, int], None] | None = None
) -> tuple[dict[str, Interaction], list[Feedback]]:
    """``k`` sampled answers per train prompt, each judged: thumbs, outcome, and preferences."""
    from refeed.models.generate import sample
    from refeed.tasks import oracle

    examples = task.examples("train")
    if cfg.prompts:
        examples = examples[: cfg.prompts]
    done = [0]

    def progress(n: int) -> None:
        done[0] += n
        if tick:
            tick(done[0], len(examples))

    texts = sample(model, tok, [e.messages for e in examples], n=cfg.k, temperature=cfg.temperature, top_p=cfg.top_p,
                   max_new_tokens=cfg.max_new_tokens, seed=seed, batch_size=cfg.batch_size, progress=progress)
    interactions: dict[str, Interaction] = {}
    feedback: list[Feedback] = []
    params = {"temperature": cfg.temperature, "top_p": cfg.top_p, "max_new_tokens": cfg.max_new_tokens}
    for ex, answers in zip(examples, texts, strict=True):
        its = [Interaction(list(ex.messages), a, model=model_name, params=params, metadata={"example_id": ex.id})
               for a in answers]
        interactions.update((it.id, it) for it in its)
        feedback += oracle.thumbs(task, ex, its)
        feedback += oracle.preferences(task, ex, its, max_pairs=cfg.max_pairs_per_prompt or None, seed=seed)
    return interactions, feedback


def pairs_from_feedback(interactions: dict[str, Interaction], feedback: list[Feedback]) -> list[dict]:
    """Preference feedback -> TRL explicit-prompt rows ``{prompt, chosen, rejected, source_ids}``."""
    rows = []
    for fb in feedback:
        if fb.kind is not FeedbackKind.PREFERENCE:
            continue
        role = {t["role"]: interactions[t["interaction_id"]] for t in fb.targets}
        rows.append({"prompt": role["chosen"].messages, "chosen": role["chosen"].completion,
                     "rejected": role["rejected"].completion, "source_ids": [fb.id]})
    return rows


def unpaired_from_feedback(interactions: dict[str, Interaction], feedback: list[Feedback]) -> list[dict]:
    """Thumbs -> TRL unpaired rows ``{prompt, completion, label}`` (KTO)."""
    rows = []
    for fb in feedback:
        if fb.kind is FeedbackKind.RATING and fb.interaction_id in interactions:
            it = interactions[fb.interaction_id]
            rows.append({"prompt": it.messages, "completion": it.completion, "label": bool(fb.score),
                         "source_ids": [fb.id]})
    return rows


def sft_from_feedback(interactions: dict[str, Interaction], feedback: list[Feedback]) -> list[dict]:
    """Thumbs-up answers -> SFT rows ``{prompt, completion}`` (rejection sampling)."""
    return [{k: r[k] for k in ("prompt", "completion", "source_ids")}
            for r in unpaired_from_feedback(interactions, feedback) if r["label"]]
