"""Validation of every feedback kind (pydantic): what ``Store.feedback(target, kind, **fields)`` accepts.

A bad record raises :class:`ValidationFailed` naming the kind, the field and the rule, before anything
is written. Each model turns its fields into the typed columns (``score``, ``label``, ``text``), the
``payload`` JSON, target rows (preferences, rankings) and span rows of one feedback event.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from refeed.store.errors import ValidationFailed

SIGNALS = ("copy", "share", "dwell", "click", "accept", "abandon")


class _Kind(BaseModel):
    # allow_inf_nan=False: 1e999, NaN and Infinity are refused naming the field (no column stores them)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    needs_target: ClassVar[bool] = True  # False: the target interaction is optional

    def columns(self) -> dict[str, Any]:
        """score / label / text / payload / targets / spans for the feedback row."""
        raise NotImplementedError


class Rating(_Kind):
    scale: tuple[float, float] = (1, 5)
    score: float
    reason_tags: list[str] = []

    @field_validator("scale")
    @classmethod
    def _ordered(cls, v):
        if not v[0] < v[1]:
            raise ValueError(f"must be (low, high) with low < high, got {v}")
        return v

    @field_validator("score")
    @classmethod
    def _in_scale(cls, v, info):
        lo, hi = info.data.get("scale", (1, 5))
        if not lo <= v <= hi:
            raise ValueError(
                f"{v} is outside the scale ({lo:g}, {hi:g}); pass scale=(low, high) for another scale"
            )
        return v

    def columns(self):
        label = None
        if self.scale == (0, 1) and self.score in (0, 1):
            label = "up" if self.score == 1 else "down"
        return {
            "score": self.score,
            "label": label,
            "payload": {"scale": list(self.scale), "reason_tags": self.reason_tags},
        }


class Thumbs(_Kind):
    """``store.feedback(i, "thumbs", up=True)``: stored as a rating on the 2-point scale (0, 1)."""

    up: bool

    def columns(self):
        return Rating(score=float(self.up), scale=(0, 1)).columns()


class Preference(_Kind):
    """The target is the chosen answer; ``tie`` / ``both_bad`` record no winner (roles "candidate")."""

    rejected: str = Field(min_length=1)
    tie: bool = False
    both_bad: bool = False
    strength: float | None = Field(default=None, ge=0, le=1)
    aspect: str | None = None
    shown_first: Literal["chosen", "rejected"] | None = None

    def targets(self, target: str) -> list[dict]:
        if target == self.rejected:
            raise ValueError("a preference compares two different interactions; chosen == rejected")
        no_winner = self.tie or self.both_bad
        order = [target, self.rejected] if self.shown_first != "rejected" else [self.rejected, target]
        return [
            {
                "interaction_id": i,
                "role": "candidate" if no_winner else ("chosen" if i == target else "rejected"),
                "position": order.index(i),
            }
            for i in (target, self.rejected)
        ]

    def columns(self):
        label = "tie" if self.tie else "both_bad" if self.both_bad else None
        return {"label": label, "payload": {"strength": self.strength, "aspect": self.aspect}}


class Ranking(_Kind):
    """``ranking=[best, second, [tied_a, tied_b], ...]``: position 1 is best; a list inside is a tie."""

    needs_target: ClassVar[bool] = False
    ranking: list[str | list[str]] = Field(min_length=2)

    def targets(self, target: str | None) -> list[dict]:
        out, seen = [], set()
        for pos, entry in enumerate(self.ranking, start=1):
            for i in [entry] if isinstance(entry, str) else entry:
                if i in seen:
                    raise ValueError(f"interaction {i} appears twice in the ranking")
                seen.add(i)
                out.append({"interaction_id": i, "role": "candidate", "position": pos})
        if len(out) < 2:
            raise ValueError("a ranking needs at least two interactions")
        return out

    def columns(self):
        return {"payload": {}}


class Critique(_Kind):
    text: str = Field(min_length=1)
    aspect: str | None = None

    def columns(self):
        return {"text": self.text, "payload": {"aspect": self.aspect}}


class Edit(_Kind):
    """The corrected completion; the store also logs it as an interaction derived from the original."""

    text: str = Field(min_length=1)

    def columns(self):
        return {"text": self.text, "payload": {}}


class SpanItem(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    start: int = Field(ge=0)
    end: int = Field(gt=0)
    category: str | None = None
    severity: int | None = Field(default=None, ge=0, le=10)
    comment: str | None = None

    @model_validator(mode="after")
    def _ordered(self):
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be greater than start ({self.start})")
        return self


class Span(_Kind):
    """One or more character spans (Unicode code points, end exclusive) of the completion."""

    spans: list[SpanItem] = Field(default=[], min_length=0)
    start: int | None = None
    end: int | None = None
    category: str | None = None
    severity: int | None = None
    comment: str | None = None

    @model_validator(mode="after")
    def _one_form(self):
        if self.start is not None or self.end is not None:
            if self.spans:
                raise ValueError("give either spans=[...] or start/end, not both")
            item = SpanItem(
                start=self.start if self.start is not None else -1,
                end=self.end or 0,
                category=self.category,
                severity=self.severity,
                comment=self.comment,
            )
            object.__setattr__(self, "spans", [item])
        if not self.spans:
            raise ValueError("a span feedback needs start and end (or spans=[...])")
        return self

    def columns(self):
        return {"label": self.spans[0].category, "payload": {}}


class Retry(_Kind):
    regeneration_id: str | None = None
    reason: str | None = None

    def columns(self):
        return {"payload": {"regeneration_id": self.regeneration_id, "reason": self.reason}}


class Followup(_Kind):
    text: str = Field(min_length=1)
    label: str | None = None  # correction | clarification | continuation | thanks | positive | negative
    followup_interaction_id: str | None = None

    def columns(self):
        return {
            "text": self.text,
            "label": self.label,
            "payload": {"followup_interaction_id": self.followup_interaction_id},
        }


class Principle(_Kind):
    """A standing rule for the project; ``target`` (optional) is the interaction it was born from."""

    needs_target: ClassVar[bool] = False
    text: str = Field(min_length=1)
    applies_when: str | None = None
    not_when: str | None = None
    tags: list[str] = []

    def columns(self):
        return {
            "text": self.text,
            "payload": {"applies_when": self.applies_when, "not_when": self.not_when, "tags": self.tags},
        }


class Signal(_Kind):
    signal: Literal[SIGNALS]  # type: ignore[valid-type]
    value: float = 1.0
    propensity: float | None = Field(default=None, gt=0, le=1)

    def columns(self):
        return {"label": self.signal, "score": self.value, "payload": {"propensity": self.propensity}}


class Outcome(_Kind):
    passed: bool
    score: float | None = None
    verifier: str | None = None
    expected: str | None = None

    def columns(self):
        score = self.score if self.score is not None else float(self.passed)
        return {
            "label": "pass" if self.passed else "fail",
            "score": score,
            "payload": {"verifier": self.verifier, "expected": self.expected},
        }


KIND_MODELS: dict[str, type[_Kind]] = {
    "rating": Rating,
    "thumbs": Thumbs,
    "preference": Preference,
    "ranking": Ranking,
    "critique": Critique,
    "edit": Edit,
    "span": Span,
    "retry": Retry,
    "followup": Followup,
    "principle": Principle,
    "signal": Signal,
    "outcome": Outcome,
}


def parse(kind: str, fields: dict[str, Any]) -> _Kind:
    """Validate the keyword fields of one feedback record; raise ValidationFailed naming field and rule."""
    model = KIND_MODELS.get(kind)
    if model is None:
        raise ValidationFailed(f"unknown feedback kind {kind!r}; expected one of {', '.join(KIND_MODELS)}")
    try:
        return model(**fields)
    except ValidationError as e:
        raise ValidationFailed(_describe(kind, e)) from None


def _describe(kind: str, e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(record)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown field for {kind}; allowed: {', '.join(KIND_MODELS[kind].model_fields)}"
        parts.append(f"field {loc!r}: {msg}")
    return f"invalid {kind} feedback: " + "; ".join(parts)
