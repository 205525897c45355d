"""Sample answers on a task's prompts, let the simulated user judge them, and build rows from the store.

Shared by the demo and by ``refeed train`` when no dataset is given. The answers are logged into a store
and the oracle's judgements go in through ``Store.write_batch`` as the SDK calls a client would make
(``store_feedback``); training rows come out through the same builders that serve real users' feedback.
``PLANS`` says, per kind of training data, which feedback the simulated user gives and which builder turns
it into rows; ``plan_for`` picks one from the objective's declared needs (batch kind, extra columns).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from refeed.types import Example, Interaction


@dataclass(frozen=True)
class SamplingConfig:
    prompts: int = 2000  # prompts of the split to sample on (0: all of it)
    k: int = 4  # answers per prompt
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 8
    batch_size: int = 64  # prompts per generate call
    max_pairs_per_prompt: int = 2  # preferences per prompt (0: all pairs)
    preference_by: str = "verdict"  # verdict: correct beats incorrect; grade: the closer 1-5 grade wins


@dataclass(frozen=True)
class Plan:
    """Which feedback kinds the simulated user gives, and which builder makes rows of them."""

    kinds: tuple[str, ...]
    builder: str  # a name in refeed.datasets.BUILDERS, or "principles" / "followups" (rows made here)
    params: tuple[tuple[str, object], ...] = ()
    eval_plan: str = ""  # the plan whose rows measure the model held out ("" = this one)
    observed_only: bool = False  # keep the rows the user reacted to (a naive reward model's view of signals)
    clean_from_thumbs: bool = False  # add thumbs-up answers as span rows with no spans


PLANS: dict[str, Plan] = {
    "preferences": Plan(("preference",), "pairs", (("sources", ("preference",)),)),
    "curriculum": Plan(("ranking",), "pairs", (("sources", ("ranking",)), ("order", "curriculum")), "preferences"),
    "rankings": Plan(("ranking",), "groups"),
    "thumbs": Plan(("thumbs",), "unpaired"),
    # CausalRM learns from biased, noisy observations; it is measured against the truth (thumbs).
    "signals": Plan(("signal",), "causal", eval_plan="thumbs"),
    # The naive baseline on the same logged data: BCE on the observed reactions, no weighting, no correction
    # (refeed train recipes/binary_rm.yaml data.feedback=observed_signals).
    "observed_signals": Plan(("signal",), "causal", eval_plan="thumbs", observed_only=True),
    "levels": Plan(("signal",), "graded", (("ladder", ("click", "copy")),)),
    # Right answers get no span; the thumbs say which answers were judged clean (rows with no spans).
    "spans": Plan(("span", "thumbs"), "spans", eval_plan="thumbs", clean_from_thumbs=True),
    "edits": Plan(("edit", "thumbs"), "sft"),
    "followups": Plan(("followup",), "followups"),
    "principles": Plan(("principle",), "principles"),
}


def plan_for(objective, name: str = "") -> str:
    """The plan ``name``, or the one the objective's rows need (from its capabilities, not its name)."""
    from refeed.objectives import BatchKind

    if name:
        if name not in PLANS:
            raise ValueError(f"data.feedback must be one of {', '.join(PLANS)}, got '{name}'")
        return name
    kind, extra = objective.batch_kind, set(objective.needs.extra_columns or ())
    if kind is BatchKind.PAIR:
        return "curriculum" if objective.needs.staged else "principles" if "scope" in extra else "preferences"
    if kind is BatchKind.UNPAIRED:
        return "signals" if "observed" in extra else "thumbs"
    return {BatchKind.SFT: "edits", BatchKind.GROUP: "rankings", BatchKind.GRADED: "levels",
            BatchKind.SPANS: "spans"}[kind]


def sample_answers(model, tok, examples: list[Example], cfg: SamplingConfig, seed: int, model_name: str,
                   tick: Callable[[int, int], None] | None = None, k: int | None = None) -> list[list[Interaction]]:
    """``k`` sampled answers per example (default ``cfg.k``), as interactions ready to log."""
    from refeed.models.generate import sample

    done = [0]

    def progress(n: int) -> None:
        done[0] += n
        if tick:
            tick(done[0], len(examples))

    if tick:
        tick(0, len(examples))
    texts = sample(model, tok, [e.messages for e in examples], n=k or cfg.k, temperature=cfg.temperature,
                   top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens, seed=seed, batch_size=cfg.batch_size,
                   progress=progress)
    params = {"temperature": cfg.temperature, "top_p": cfg.top_p, "max_new_tokens": cfg.max_new_tokens}
    return [[Interaction(list(ex.messages), a, model=model_name, params=params, metadata={"example_id": ex.id})
             for a in answers] for ex, answers in zip(examples, texts, strict=True)]


def simulate_feedback(
    model, tok, task, cfg: SamplingConfig, seed: int, model_name: str, tick: Callable[[int, int], None] | None = None,
    kinds: tuple[str, ...] = ("thumbs", "preference"), split: str = "train",
) -> tuple[dict[str, Interaction], list[dict]]:
    """``k`` sampled answers per prompt of ``split``, each group judged by the oracle in ``kinds``.

    Returns the interactions by id and the feedback as SDK items (``refeed.tasks.oracle.judge``)."""
    from refeed.tasks import oracle

    examples = task.examples(split)
    if cfg.prompts:
        examples = examples[: cfg.prompts]
    groups = sample_answers(model, tok, examples, cfg, seed, model_name, tick)
    interactions: dict[str, Interaction] = {}
    feedback: list[dict] = []
    for ex, its in zip(examples, groups, strict=True):
        interactions.update((it.id, it) for it in its)
        feedback += oracle.judge(task, ex, its, kinds, seed=seed, max_pairs=cfg.max_pairs_per_prompt or None,
                                 preference_by=cfg.preference_by)
    return interactions, feedback


def store_feedback(run_dir: Path, interactions: dict[str, Interaction], feedback: list[dict],
                   name: str = "feedback.db"):
    """Log the sampled answers and the simulated user's judgements (SDK items, validated by the store) into a
    SQLite store in ``run_dir``, the same store real feedback lands in; returns the store."""
    from refeed.store import Store

    store = Store(f"sqlite:///{Path(run_dir).resolve() / name}")
    store.write_batch([*interactions.values(), *feedback])
    return store


def build_rows(store, plan: str):
    """The Dataset the plan's builder makes from ``store`` (plans built by the builders only)."""
    from refeed.datasets import BUILDERS

    p = PLANS[plan]
    ds = BUILDERS[p.builder](store, **dict(p.params))
    if p.observed_only:
        return ds.select([i for i, o in enumerate(ds["observed"]) if o == 1])
    if p.clean_from_thumbs:
        from datasets import Dataset, concatenate_datasets

        clean = [{"prompt": r["prompt"], "completion": r["completion"], "spans": [], "source_ids": r["source_ids"]}
                 for r in BUILDERS["unpaired"](store).to_list() if r["label"]]
        if clean:
            return concatenate_datasets([ds, Dataset.from_list(clean, features=ds.features)])
    return ds


def rows_from_store(store, batch_kind) -> list[dict] | None:
    """Training rows for ``batch_kind`` (the demo's kinds) built from the store (None: no builder)."""
    from refeed.objectives import BatchKind

    plan = {BatchKind.PAIR: "preferences", BatchKind.UNPAIRED: "thumbs", BatchKind.SFT: "edits"}.get(batch_kind)
    return build_rows(store, plan).to_list() if plan else None


def principle_rows(model, tok, store, task, cfg: SamplingConfig, seed: int, model_name: str,
                   tick: Callable[[int, int], None] | None = None) -> list[dict]:
    """C3PO rows from the store's principles: the base model's answers on in-scope and near-scope prompts of
    ``task`` and on general prompts (the other built-in task), each principle's rule applied to the first."""
    from refeed.datasets import principle_jobs
    from refeed.pipelines.pretrain import TaskConfig
    from refeed.tasks import oracle

    jobs = principle_jobs(store).to_list()
    rules = [r for j in jobs if (r := oracle.rule_for(j["principle"])) is not None and r.task == task.name]
    if not rules:
        raise ValueError(f"the store holds no principle for task '{task.name}' that the simulated user can apply")
    n = cfg.prompts or 10**9
    other = "reverse" if task.name == "arithmetic" else "arithmetic"
    general = TaskConfig(name=other, levels=(3, 4) if other == "reverse" else (1, 2), train_size=max(n, 50),
                         dev_size=10, test_size=10).build().examples("train")[:n]
    rows: list[dict] = []
    for rule, job in zip(rules, jobs, strict=False):
        inside, near = oracle.scope_examples(rule, task)
        sets = [inside[:n], near[:n], general]
        answers = [sample_answers(model, tok, exs, cfg, seed, model_name, tick, k=1) for exs in sets]
        store.write_batch([its[0] for group in answers for its in group])
        samples = [[(ex, its[0].completion) for ex, its in zip(exs, group, strict=True)]
                   for exs, group in zip(sets, answers, strict=True)]
        ids = {ex.id: its[0].id for exs, group in zip(sets, answers, strict=True) for ex, its in zip(exs, group, strict=True)}
        for row, (ex, _) in zip(oracle.c3po_rows(rule, *samples), _zipped(samples), strict=True):
            rows.append({**row, "source_ids": [*job["source_ids"], ids[ex.id]]})
    return rows


def _zipped(samples):
    n = min(len(s) for s in samples)
    return [s[i] for i in range(n) for s in samples]


def followup_rows(model, tok, store) -> list[dict]:
    """FLR's pairs: per prompt, the answer whose users' follow-ups the model finds most likely to be positive
    against the least (``refeed.rewards.flr_pairs``), with the follow-up texts users wrote in the store."""
    from collections import defaultdict

    from refeed.datasets import followups
    from refeed.rewards import flr_pairs
    from refeed.store.trl import answer_text
    from refeed.tasks import oracle

    rows = followups(store).to_list()
    # FLR scores answers with a fixed set of positive and negative follow-ups (the paper's are predefined):
    # the ones users wrote, and where the store holds none of one polarity (a weak base model is never
    # thanked), the simulated user's own phrases of it.
    positive = sorted({r["followup"] for r in rows if r["label"] == "positive"}) or list(oracle.POSITIVE_FOLLOWUPS)
    negative = sorted({r["followup"] for r in rows if r["label"] == "negative"}) or list(oracle.NEGATIVE_FOLLOWUPS)
    if not rows:
        raise ValueError("the store holds no follow-ups to mine FLR pairs from; sample more prompts")
    groups: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for r in rows:
        key = repr(r["prompt"])
        groups[key][0].append(r["prompt"])
        groups[key][1].append((answer_text(r["completion"]), r["source_ids"]))  # builds are conversational
    prompts = [g[0][0] for g in groups.values()]
    answers = [list(dict.fromkeys(a for a, _ in g[1])) for g in groups.values()]
    ids = {(repr(g[0][0]), a): s for g in groups.values() for a, s in g[1]}
    pairs = flr_pairs(model, tok, prompts, answers, positive, negative)
    for p in pairs:
        p["source_ids"] = sorted({*ids[(repr(p["prompt"]), p["chosen"])], *ids[(repr(p["prompt"]), p["rejected"])]})
    return pairs
