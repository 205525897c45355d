"""Builders: turn what the store holds into training datasets (HF ``datasets.Dataset``, TRL columns).

Every builder takes a ``refeed.Store`` and returns a Dataset with a ``source_ids`` column (the
feedback and interaction ids each row came from) and a report (``build_report(ds)``): rows, what was
dropped and why, contradictions, annotator agreement. No torch here.
"""

from refeed.datasets.common import BuildReport, build_report
from refeed.datasets.groups import principle_jobs, ranked_groups
from refeed.datasets.pairs import preference_pairs
from refeed.datasets.pointwise import (
    critique_triplets,
    followups,
    observational,
    sft_rows,
    span_labels,
    unpaired,
)
from refeed.datasets.signals import causal_rows, graded_levels
from refeed.datasets.split import split_by_prompt

BUILDERS = {
    "pairs": preference_pairs,
    "unpaired": unpaired,
    "sft": sft_rows,
    "groups": ranked_groups,
    "critiques": critique_triplets,
    "spans": span_labels,
    "followups": followups,
    "observational": observational,
    "causal": causal_rows,
    "graded": graded_levels,
    "principles": principle_jobs,
}

# The feedback kinds each builder reads (``pairs`` reads the ones in its ``sources`` option), to say why a
# build came out empty. ``causal`` and ``graded`` make a row for every logged answer as well.
READS = {
    "pairs": ("preference", "ranking", "rating", "edit", "outcome"),
    "unpaired": ("rating", "outcome", "span", "edit"),
    "sft": ("edit", "rating"),
    "groups": ("ranking",),
    "critiques": ("critique",),
    "spans": ("span",),
    "followups": ("followup",),
    "observational": ("signal",),
    "causal": ("signal",),
    "graded": ("signal", "rating", "outcome"),
    "principles": ("principle",),
}

__all__ = [
    "BUILDERS",
    "READS",
    "BuildReport",
    "build_report",
    "causal_rows",
    "graded_levels",
    "critique_triplets",
    "followups",
    "observational",
    "preference_pairs",
    "principle_jobs",
    "ranked_groups",
    "sft_rows",
    "span_labels",
    "split_by_prompt",
    "unpaired",
]
