"""Builders over single answers: unpaired labels (KTO), SFT rows, critiques, spans, follow-ups, signals.

Each returns an HF Dataset in TRL's column names plus ``source_ids``.
"""

from __future__ import annotations

from collections import defaultdict

from refeed.datasets.common import BuildReport, builder, load, to_dataset


def _norm(fb) -> float:
    lo, hi = fb.payload.get("scale") or (0.0, 1.0)
    return (fb.score - lo) / (hi - lo)


@builder
def unpaired(store, *, good: float = 0.75, bad: float = 0.25, project: str | None = None):
    """TRL "unpaired preference" rows (``prompt``, ``completion``, ``label``) for KTO / BCO, plus
    ``correct_rate`` (the share of desirable answers among the prompt's rows) for NFT.

    A rating normalised to [0, 1] (thumbs up = 1) at or above ``good`` is desirable, at or below
    ``bad`` undesirable, in between dropped; several raters of one answer are averaged first. Verifier
    outcomes give pass / fail; an answer with an error span is undesirable; an edit makes the corrected
    answer desirable. Pairs are not split into unpaired rows (TRL warns against it).
    """
    report = BuildReport("unpaired")
    fbs, inter = load(store, ["rating", "outcome", "span", "edit"], project)
    votes = defaultdict(list)
    for fb in fbs:
        kind = str(fb.kind)
        if kind == "rating":
            votes[fb.interaction_id].append((_norm(fb), fb.id))
        elif kind == "outcome":
            votes[fb.interaction_id].append((1.0 if fb.label == "pass" else 0.0, fb.id))
        elif kind == "span" and fb.payload.get("spans"):
            votes[fb.interaction_id].append((0.0, fb.id))
        elif kind == "edit" and fb.payload.get("edited_interaction_id") in inter:
            votes[fb.payload["edited_interaction_id"]].append((1.0, fb.id))
    rows, per_prompt = [], defaultdict(list)  # context -> labels, for correct_rate
    for iid, vs in votes.items():
        mean = sum(v for v, _ in vs) / len(vs)
        if bad < mean < good:
            report.dropped["neutral grade"] += 1
            continue
        report.by_source["desirable" if mean >= good else "undesirable"] += 1
        i = inter[iid]
        per_prompt[i.context_hash].append(mean >= good)
        rows.append(
            {
                "prompt": i.messages,
                "completion": i.completion,
                "label": mean >= good,
                "context": i.context_hash,
                "source_ids": sorted({f for _, f in vs} | {iid}),
            }
        )
    for r in rows:  # NFT's r: the share of desirable answers among the prompt's labelled answers
        labels = per_prompt[r.pop("context")]
        r["correct_rate"] = sum(labels) / len(labels)
    return to_dataset(rows, report, ["prompt", "completion", "label", "correct_rate"])


@builder
def sft_rows(store, *, min_rating: float = 0.8, demonstrations: bool = True, project: str | None = None):
    """TRL prompt-completion rows from edits (the corrected answer), top-rated answers with no error span
    and no negative rating, and (``demonstrations``) answers imported to imitate: TRL prompt-completion and
    language-modelling rows, OpenAI fine-tuning turns (``metadata.demonstration``; one pass over the
    project's interactions finds them)."""
    report = BuildReport("sft_rows")
    fbs, inter = load(store, ["edit", "rating", "span"], project)
    negative = {fb.interaction_id for fb in fbs if str(fb.kind) == "span"}
    ratings = defaultdict(list)
    for fb in fbs:
        if str(fb.kind) == "rating":
            ratings[fb.interaction_id].append((_norm(fb), fb.id))
    rows = []
    for fb in fbs:
        if str(fb.kind) == "edit" and fb.payload.get("edited_interaction_id") in inter:
            i = inter[fb.payload["edited_interaction_id"]]
            rows.append({"prompt": i.messages, "completion": i.completion, "source_ids": [fb.id, i.id]})
            report.by_source["edit"] += 1
    for iid, vs in ratings.items():
        if min(v for v, _ in vs) < min_rating or iid in negative:
            report.dropped["not top-rated"] += 1
            continue
        i = inter[iid]
        rows.append(
            {
                "prompt": i.messages,
                "completion": i.completion,
                "source_ids": sorted({f for _, f in vs} | {iid}),
            }
        )
        report.by_source["top-rated"] += 1
    if demonstrations:
        taken = {i for r in rows for i in r["source_ids"]}
        for i in store.iter_interactions(project=project):
            if i.metadata.get("demonstration") and i.id not in taken and i.id not in negative:
                rows.append({"prompt": i.messages, "completion": i.completion, "source_ids": [i.id]})
                report.by_source["demonstration"] += 1
    return to_dataset(rows, report, ["prompt", "completion"])


def _one_row_per_feedback(store, kind: str, builder: str, columns: dict, project: str | None):
    """One row per active feedback of ``kind`` on an answer: prompt, completion, then ``columns``
    (name -> function of the feedback), and the feedback and interaction ids as ``source_ids``."""
    report = BuildReport(builder)
    fbs, inter = load(store, [kind], project)
    rows = [
        {
            "prompt": inter[fb.interaction_id].messages,
            "completion": inter[fb.interaction_id].completion,
            **{name: get(fb) for name, get in columns.items()},
            "source_ids": [fb.id, fb.interaction_id],
        }
        for fb in fbs
    ]
    report.by_source[kind] = len(rows)
    return to_dataset(rows, report, ["prompt", "completion", *columns])


@builder
def critique_triplets(store, *, project: str | None = None):
    """(prompt, completion, critique) rows for text-feedback methods (ILF and kin)."""
    columns = {"critique": lambda fb: fb.text, "aspect": lambda fb: fb.payload.get("aspect")}
    return _one_row_per_feedback(store, "critique", "critique_triplets", columns, project)


@builder
def span_labels(store, *, project: str | None = None):
    """Span annotations per answer for fine-grained reward models: ``spans`` = [{start, end, category,
    severity}] in code points of ``completion``; several span feedbacks on one answer are merged."""
    report = BuildReport("span_labels")
    fbs, inter = load(store, ["span"], project)
    merged = defaultdict(lambda: ([], []))
    for fb in fbs:
        spans, ids = merged[fb.interaction_id]
        spans += [
            {k: s[k] for k in ("start", "end", "category", "severity")} for s in fb.payload.get("spans", [])
        ]
        ids.append(fb.id)
    rows = [
        {
            "prompt": inter[i].messages,
            "completion": inter[i].completion,
            "spans": sorted(spans, key=lambda s: (s["start"], s["end"])),
            "source_ids": [*ids, i],
        }
        for i, (spans, ids) in merged.items()
    ]
    report.by_source["span"] = len(rows)
    return to_dataset(rows, report, ["prompt", "completion", "spans"])


@builder
def followups(store, *, project: str | None = None):
    """(prompt, completion, followup, label) rows for FLR: the user's next message after an answer."""
    columns = {"followup": lambda fb: fb.text, "label": lambda fb: fb.label}
    return _one_row_per_feedback(store, "followup", "followups", columns, project)


@builder
def observational(store, *, project: str | None = None):
    """Implicit signals with their logging propensity for CausalRM: ``signal``, ``value``, ``propensity``
    (None where the logger did not record one; CausalRM then needs an estimate)."""
    columns = {
        "signal": lambda fb: fb.label,
        "value": lambda fb: fb.score,
        "propensity": lambda fb: fb.payload.get("propensity"),
    }
    return _one_row_per_feedback(store, "signal", "observational", columns, project)
