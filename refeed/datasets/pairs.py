"""Preference pairs (TRL "preference" type, explicit prompt): ``prompt``, ``chosen``, ``rejected``, ``margin``.

Sources, each switchable through ``sources``:
- ``preference``: chosen vs rejected (ties and "both bad" are dropped and counted);
- ``ranking``: every pair across ranks (``ranking_pairs="all"``) or neighbours only (``"adjacent"``),
  tied ranks never paired; margin = rank gap;
- ``rating``: two answers to one prompt (same ``context_hash``) whose mean ratings on the same scale
  differ by at least ``min_gap``; margin = the gap;
- ``edit``: the corrected answer over the original;
- ``outcome``: an answer that passed its verifier over one to the same prompt that failed.

Votes on the same two texts are aggregated by majority; A ≻ B and B ≻ A are reported as a
contradiction, and dropped when the vote is even. Duplicates (same prompt, chosen and rejected text)
collapse into one row. ``order="curriculum"`` sorts easy → hard by margin and adds ``stage``: the pair's
rank among its prompt's pairs, easiest 0 (Curry-DPO trains stage 0, then 1, ...).
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations

from refeed.datasets.common import BuildReport, builder, load, text_hash, to_dataset

SOURCES = ("preference", "ranking", "rating", "edit", "outcome")


@builder
def preference_pairs(
    store,
    *,
    sources=SOURCES,
    min_gap: float = 1.0,
    ranking_pairs: str = "all",
    order: str | None = None,
    project: str | None = None,
):
    unknown = set(sources) - set(SOURCES)
    if unknown or ranking_pairs not in ("all", "adjacent") or order not in (None, "curriculum"):
        raise ValueError(
            f"preference_pairs: sources must be from {SOURCES} (got {sorted(unknown)}), ranking_pairs "
            f"'all' or 'adjacent' (got {ranking_pairs!r}), order None or 'curriculum' (got {order!r})"
        )
    report = BuildReport("preference_pairs")
    fbs, inter = load(store, sources, project)
    votes = defaultdict(
        list
    )  # (context, frozenset of the two texts) -> [(winner id, loser id, margin, source, fb id)]

    def vote(win, lose, margin, source, fb_id):
        a, b = inter[win], inter[lose]
        if a.completion == b.completion:
            report.dropped["identical texts"] += 1
            return
        votes[(a.context_hash, frozenset((a.completion, b.completion)))].append(
            (win, lose, margin, source, fb_id)
        )

    by_kind = defaultdict(list)
    for fb in fbs:
        by_kind[str(fb.kind)].append(fb)
    for fb in by_kind["preference"]:
        roles = {t["role"]: t["interaction_id"] for t in fb.targets}
        if "chosen" not in roles:
            report.dropped[f"preference {fb.label or 'without winner'}"] += 1
            continue
        vote(roles["chosen"], roles["rejected"], fb.payload.get("strength"), "preference", fb.id)
    for fb in by_kind["ranking"]:
        for win, lose, gap in _ranking_pairs(fb.targets, ranking_pairs):
            vote(win, lose, float(gap), "ranking", fb.id)
    for fb in by_kind["edit"]:
        edited = fb.payload.get("edited_interaction_id")
        if edited in inter:
            vote(edited, fb.interaction_id, None, "edit", fb.id)
    _graded(
        by_kind["rating"], inter, min_gap, "rating", vote, lambda fb: tuple(fb.payload.get("scale") or ())
    )
    _graded(
        by_kind["outcome"], inter, 1.0, "outcome", vote, lambda fb: None, score=lambda fb: fb.label == "pass"
    )
    rows = _resolve(votes, inter, report)
    if order == "curriculum":
        return to_dataset(_stages(rows, inter), report, ["prompt", "chosen", "rejected", "margin", "source", "stage"])
    return to_dataset(rows, report, ["prompt", "chosen", "rejected", "margin", "source"])


def _stages(rows, inter):
    """Curry-DPO's order: easiest (largest margin) first, and ``stage`` k = the k-th easiest pair of its prompt."""
    rows.sort(key=lambda r: -(r["margin"] if r["margin"] is not None else 0.0))
    seen = defaultdict(int)
    for r in rows:
        prompt = next(inter[i].context_hash for i in r["source_ids"] if i in inter)
        r["stage"], seen[prompt] = seen[prompt], seen[prompt] + 1
    return rows


def _ranking_pairs(targets, mode):
    ranked = sorted(targets, key=lambda t: t["position"])
    levels = sorted({t["position"] for t in ranked})
    for a, b in combinations(ranked, 2):
        if a["position"] == b["position"]:
            continue
        gap = levels.index(b["position"]) - levels.index(a["position"])
        if mode == "all" or gap == 1:
            yield a["interaction_id"], b["interaction_id"], gap


def _graded(fbs, inter, min_gap, source, vote, scale_of, score=lambda fb: fb.score):
    """Pairs from pointwise grades of answers to one prompt: mean grade per answer, then every gap ≥ min_gap."""
    grades = defaultdict(lambda: defaultdict(list))  # (context, scale) -> interaction -> [(grade, fb id)]
    for fb in fbs:
        if fb.interaction_id in inter:
            grades[(inter[fb.interaction_id].context_hash, scale_of(fb))][fb.interaction_id].append(
                (float(score(fb)), fb.id)
            )
    for group in grades.values():
        means = {i: sum(g for g, _ in v) / len(v) for i, v in group.items()}
        for a, b in combinations(sorted(means), 2):
            hi, lo = (a, b) if means[a] >= means[b] else (b, a)
            if means[hi] - means[lo] >= min_gap:
                ids = [f for _, f in group[hi]] + [f for _, f in group[lo]]
                vote(hi, lo, means[hi] - means[lo], source, ",".join(ids))


def _resolve(votes, inter, report):
    rows, multi, agreeing = [], 0, 0
    for (_, _texts), vs in votes.items():
        if len(vs) == 1:  # the common case: one vote, so no tally, no contradiction, nothing dropped
            win, lose, margin, source, ids = vs[0]
            report.by_source[source] += 1
            rows.append(_row(inter, win, lose, vs, source, {*ids.split(","), win, lose}))
            continue
        tally = defaultdict(list)
        for v in vs:
            tally[inter[v[0]].completion].append(v)
        multi += 1
        agreeing += len(tally) == 1
        if len(tally) > 1:
            counts = sorted((len(v), text_hash(t)) for t, v in tally.items())
            report.contradictions.append(
                {
                    "prompt": inter[vs[0][0]].messages,
                    "votes": [c for c, _ in counts],
                    "feedback_ids": sorted({x for v in vs for x in v[4].split(",")}),
                }
            )
            if counts[0][0] == counts[1][0]:
                report.dropped["contradiction with an even vote"] += 1
                continue
        winner_votes = max(tally.values(), key=len)
        report.dropped["duplicate or outvoted"] += len(vs) - 1
        win, lose, _, source, _ = winner_votes[0]
        report.by_source[source] += 1
        ids = {x for v in vs for x in v[4].split(",")} | {win, lose}
        rows.append(_row(inter, win, lose, winner_votes, source, ids))
    report.agreement = agreeing / multi if multi else None
    return rows


def _row(inter, win, lose, winner_votes, source, ids):
    """One pair: the first winning vote's answers, the mean margin of the winning votes, every id involved.

    A pair no vote gave a margin (a plain preference) gets 0.0, not None: TRL's RewardTrainer subtracts
    every row's ``margin`` as a number, and 0 is its "no margin"."""
    margins = [v[2] for v in winner_votes if v[2] is not None]
    return {
        "prompt": inter[win].messages,
        "chosen": inter[win].completion,
        "rejected": inter[lose].completion,
        "margin": sum(margins) / len(margins) if margins else 0.0,
        "source": source,
        "source_ids": sorted(ids),
    }
