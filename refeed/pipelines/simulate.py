"""Sample answers on a task's train prompts and let the simulated user judge them.

Shared by the demo and by ``refeed train`` when no dataset is given: the answers and the feedback on
them go into a store (``store_feedback``), and training rows come out of it through the same builders
that serve real users' feedback (``rows_from_store``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from refeed.types import Feedback, Interaction


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


def store_feedback(run_dir: Path, interactions: dict[str, Interaction], feedback: list[Feedback],
                   name: str = "feedback.db"):
    """Log the sampled answers and the simulated user's judgements into a SQLite store in ``run_dir``,
    the same store real feedback lands in; returns the store."""
    from refeed.store import Store

    store = Store(f"sqlite:///{Path(run_dir).resolve() / name}")
    store.write_batch([*interactions.values(), *feedback])
    return store


def rows_from_store(store, batch_kind) -> list[dict] | None:
    """Training rows for ``batch_kind`` built from the store by ``refeed.datasets`` (None: no builder)."""
    from refeed.datasets import preference_pairs, sft_rows, unpaired
    from refeed.objectives import BatchKind

    builders = {
        BatchKind.PAIR: lambda: preference_pairs(store, sources=["preference"]),
        BatchKind.UNPAIRED: lambda: unpaired(store),
        BatchKind.SFT: lambda: sft_rows(store),
    }
    return builders[batch_kind]().to_list() if batch_kind in builders else None
