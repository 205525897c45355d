"""Builders over several answers or the whole project: ranked groups and principle jobs."""

from __future__ import annotations

from refeed.datasets.common import BuildReport, builder, load, to_dataset


@builder
def ranked_groups(store, *, project: str | None = None):
    """``prompt``, ``completions`` (best first) and ``ranks`` (1 = best, ties share a rank) per ranking,
    for groupwise losses (Plackett–Luce)."""
    report = BuildReport("ranked_groups")
    fbs, inter = load(store, ["ranking"], project)
    rows = []
    for fb in fbs:
        ts = sorted(fb.targets, key=lambda t: (t["position"], t["interaction_id"]))
        prompts = {inter[t["interaction_id"]].context_hash for t in ts}
        if len(prompts) > 1:
            report.dropped["ranking across different prompts"] += 1
            continue
        rows.append(
            {
                "prompt": inter[ts[0]["interaction_id"]].messages,
                "completions": [inter[t["interaction_id"]].completion for t in ts],
                "ranks": [t["position"] for t in ts],
                "source_ids": [fb.id, *(t["interaction_id"] for t in ts)],
            }
        )
    report.by_source["ranking"] = len(rows)
    return to_dataset(rows, report, ["prompt", "completions", "ranks"])


@builder
def principle_jobs(store, *, project: str | None = None):
    """One row per active principle: the rule, its scope (``applies_when`` / ``not_when``) and the prompt it
    was born from, if any. C3PO generates in-scope and out-of-scope prompts from these."""
    report = BuildReport("principle_jobs")
    fbs, inter = load(store, ["principle"], project)
    rows = [
        {
            "principle": fb.text,
            "applies_when": fb.payload.get("applies_when"),
            "not_when": fb.payload.get("not_when"),
            "prompt": inter[fb.interaction_id].messages if fb.interaction_id in inter else None,
            "source_ids": [fb.id] + ([fb.interaction_id] if fb.interaction_id else []),
        }
        for fb in fbs
    ]
    report.by_source["principle"] = len(rows)
    return to_dataset(rows, report, ["principle", "applies_when", "not_when", "prompt"])
