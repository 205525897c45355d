"""Builders over every logged answer, reacted to or not: rows for reward models of implicit feedback.

- ``causal_rows`` (CausalRM): ``observed`` = the user reacted with a positive or negative signal,
  ``label`` = the reaction's polarity, ``propensity`` = the logged P(observed); answers nobody reacted
  to are rows too (``observed`` 0): inverse-propensity weighting needs the whole logged population.
- ``graded_levels`` (ordinal reward models, GNOLR): ``label`` = how far up a ladder of nested signals
  (e.g. click < copy < thumbs up) the answer got, 0 for none of them.

Every answer of the project is read (``Store.iter_interactions``), so these builds cost one pass over
the interactions besides the feedback.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from refeed.datasets.common import BuildReport, builder, load, to_dataset

RUNGS = ("click", "dwell", "copy", "share", "accept", "abandon", "thumbs_up", "pass")  # ladder steps


def _answers(store, project):
    """Every logged answer of the project (not edits' derived texts twice: they are answers too)."""
    return {i.id: i for i in store.iter_interactions(project=project)}


@builder
def causal_rows(
    store,
    *,
    positive: Sequence[str] = ("copy", "share", "accept"),
    negative: Sequence[str] = ("abandon",),
    project: str | None = None,
):
    """One row per logged answer: ``prompt``, ``completion``, ``observed``, ``label``, ``propensity``.

    ``label`` is 1 when the answer's positive signals outnumber its negative ones (ties: 0.5 is not a
    label, so they count as unobserved and are reported). ``propensity`` is the mean logged propensity of
    the answer's signals; an answer reacted to without any logged propensity is dropped and counted,
    since CausalRM cannot weight it. Unobserved answers carry no loss under inverse-propensity weighting,
    so their ``propensity`` is 1.0 unless their signals logged one.
    """
    report = BuildReport("causal_rows")
    unknown = (set(positive) | set(negative)) - set(RUNGS[:6])
    if unknown or set(positive) & set(negative):
        raise ValueError(f"causal_rows: positive and negative must be disjoint signal kinds from {RUNGS[:6]}, got {sorted(unknown)}")
    fbs, _ = load(store, ["signal"], project)
    votes = defaultdict(lambda: [0, 0, [], []])  # answer -> [positives, negatives, propensities, feedback ids]
    for fb in fbs:
        v = votes[fb.interaction_id]
        v[0] += fb.label in positive
        v[1] += fb.label in negative
        if fb.payload.get("propensity") is not None:
            v[2].append(float(fb.payload["propensity"]))
        v[3].append(fb.id)
    rows = []
    for iid, i in _answers(store, project).items():
        pos, neg, props, ids = votes.get(iid, (0, 0, [], []))
        observed = pos != neg
        if pos and pos == neg:
            report.dropped["as many negative as positive signals (kept as unobserved)"] += 1
        if observed and not props:
            report.dropped["reacted to without a logged propensity"] += 1
            continue
        report.by_source["observed" if observed else "unobserved"] += 1
        rows.append({"prompt": i.messages, "completion": i.completion, "observed": int(observed),
                     "label": int(pos > neg), "propensity": sum(props) / len(props) if props else 1.0,
                     "source_ids": sorted({*ids, iid})})
    return to_dataset(rows, report, ["prompt", "completion", "observed", "label", "propensity"])


@builder
def graded_levels(store, *, ladder: Sequence[str] = ("click", "copy", "thumbs_up"), project: str | None = None):
    """One row per logged answer: ``prompt``, ``completion``, ``label`` = the highest rung of ``ladder``
    it reached (1-based; 0 = none). Rungs: signal kinds, ``thumbs_up`` (a rating at the top of its
    scale) and ``pass`` (a verifier outcome). Set the ordinal objective's ``base_odds`` from the output
    (``refeed.objectives.ordinal.base_odds_from_levels``)."""
    report = BuildReport("graded_levels")
    if not ladder or set(ladder) - set(RUNGS) or len(set(ladder)) != len(ladder):
        raise ValueError(f"graded_levels: ladder must be distinct rungs from {RUNGS}, got {list(ladder)}")
    fbs, _ = load(store, ["signal", "rating", "outcome"], project)
    reached = defaultdict(lambda: (0, []))  # answer -> (level, feedback ids)
    for fb in fbs:
        kind = str(fb.kind)
        scale = fb.payload.get("scale") or (0, 1)
        rung = (fb.label if kind == "signal" else "thumbs_up" if kind == "rating" and fb.score >= scale[-1]
                else "pass" if kind == "outcome" and fb.label == "pass" else None)
        if rung in ladder:
            level, ids = reached[fb.interaction_id]
            reached[fb.interaction_id] = (max(level, ladder.index(rung) + 1), [*ids, fb.id])
    rows = []
    for iid, i in _answers(store, project).items():
        level, ids = reached.get(iid, (0, []))
        report.by_source[f"level {level}"] += 1
        rows.append({"prompt": i.messages, "completion": i.completion, "label": level, "source_ids": sorted({*ids, iid})})
    return to_dataset(rows, report, ["prompt", "completion", "label"])
