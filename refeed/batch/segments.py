"""Span annotations -> labelled segments for fine-grained (per-segment) reward models.

``refeed build spans`` writes what annotators marked: error spans ``{start, end, category}`` in code
points of the completion. A fine-grained reward model (``refeed.objectives.fine_grained``) is trained
on *segments* instead: for every segment of the answer and every head, 1 = no error of that head's
categories inside the segment, 0 = at least one. Segments are sentences (ends at ``.``, ``!``, ``?``
followed by whitespace or the end, and at newlines), the unit Wu et al. use for the factuality head;
the answer's end closes the last segment.

    segments_from_spans("Paris is in France. It has 3 moons.", [{"start": 20, "end": 35, "category": "Unverifiable"}],
                        ["irrelevant|redundant", "unverifiable|wrong-grounding"])
    -> [{"end": 19, "head": 0, "label": 1}, {"end": 19, "head": 1, "label": 1},
        {"end": 35, "head": 0, "label": 1}, {"end": 35, "head": 1, "label": 0}]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")


def sentence_ends(text: str) -> list[int]:
    """Exclusive character ends of the sentences of ``text`` (the last one is ``len(text)``)."""
    ends = sorted({m.end() for m in _SENTENCE_END.finditer(text)} | ({len(text)} if text else set()))
    return [e for e in ends if text[:e].strip()] or ([len(text)] if text else [])


def segments_from_spans(completion: str, spans: Sequence[dict[str, Any]], categories: Sequence[str]) -> list[dict]:
    """Per sentence and head: ``{"end", "head", "label"}``; ``categories[h]`` is ``a|b|c`` (case-insensitive)."""
    heads = [{c.strip().lower() for c in cats.split("|") if c.strip()} for cats in categories]
    out, start = [], 0
    for end in sentence_ends(completion):
        for h, cats in enumerate(heads):
            hit = any(int(s["start"]) < end and int(s["end"]) > start and str(s.get("category", "")).lower() in cats
                      for s in spans)
            out.append({"end": end, "head": h, "label": 0 if hit else 1})
        start = end
    return out


def token_index_of_chars(offsets: Sequence[tuple[int, int]], char_ends: Sequence[int]) -> list[int | None]:
    """For each exclusive character end, the index of the token holding character ``end - 1``.

    ``offsets`` are a fast tokenizer's ``(start, stop)`` per token; a character no token covers (the
    tokenizer dropped it) maps to the last token starting before it, None when there is none.
    """
    out = []
    for end in char_ends:
        c = end - 1
        idx = None
        for j, (a, b) in enumerate(offsets):
            if a <= c < b:
                idx = j
                break
            if a <= c:
                idx = j
        out.append(idx)
    return out
