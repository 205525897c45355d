"""The store's tables (SQLAlchemy 2.0), one schema for SQLite and PostgreSQL.

Two core tables: ``interactions`` (what was said) and ``feedback`` (one judgement event each), and
two side tables so SQL can index multi-target and span structure: ``feedback_targets`` (which
answers a preference or ranking compares, with roles, positions and tie groups) and
``feedback_spans`` (code-point offsets plus the quoted text). Only the kind-specific rest of a
judgement goes to the ``payload`` JSON column. See ../shared/DESIGN.md and FEEDBACK.md section 4.

Alembic migrations in ``refeed/store/migrations`` create these tables; a change here needs a new
migration (``tests/store/test_migrations.py`` fails when the two drift apart).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
Json = JSON().with_variant(JSONB(), "postgresql")
Id = String(36)

KINDS = (
    "rating",
    "preference",
    "ranking",
    "critique",
    "edit",
    "span",
    "retry",
    "followup",
    "principle",
    "signal",
    "outcome",
)
SOURCES = ("human", "ai_judge", "rule", "implicit", "simulated")
ROLES = ("feedback", "ingest", "admin")
TARGET_ROLES = ("subject", "chosen", "rejected", "candidate", "result")
# "proposed": written by a machine (an AI judge, a candidate rule) and waiting for a person to accept or
# reject it; builders read only "active" rows. Migration 0002_annotation adds it.
STATUSES = ("active", "superseded", "retracted", "proposed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: Json, list[Any]: Json, datetime: DateTime(timezone=True)}


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class ApiKey(Base):
    """Keys are stored as a public ``prefix`` (to find the row) and a sha256 of the secret."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="ck_api_keys_role"),)
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class Actor(Base):
    """Who or what judged: a person, an AI judge, a rule, an implicit signal, a simulated user."""

    __tablename__ = "actors"
    __table_args__ = (
        CheckConstraint(_in("kind", SOURCES), name="ck_actors_kind"),
        Index("ux_actors_fingerprint", "project_id", "fingerprint", unique=True),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    kind: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str | None] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class InteractionRow(Base):
    """One answer in context. ``parent_id`` is the previous turn; regenerations of one prompt share
    ``context_hash``; ``derived_from_id`` marks edits and explicit regenerations."""

    __tablename__ = "interactions"
    __table_args__ = (
        Index("ux_interactions_idem", "project_id", "idempotency_key", unique=True),
        Index("ix_interactions_context", "project_id", "context_hash"),
        Index("ix_interactions_model_time", "project_id", "model", "created_at"),
        Index("ix_interactions_thread", "thread_id"),
        Index("ix_interactions_parent", "parent_id"),
        Index("ix_interactions_derived", "derived_from_id"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    thread_id: Mapped[str | None] = mapped_column(String(200))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("interactions.id"))
    derived_from_id: Mapped[str | None] = mapped_column(ForeignKey("interactions.id"))
    messages: Mapped[list[Any]]
    completion: Mapped[str] = mapped_column(Text)
    context_hash: Mapped[str] = mapped_column(String(64))
    completion_hash: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]


class FeedbackRow(Base):
    """One judgement event, append-only: a change is a new row that ``supersedes_id`` the old one."""

    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint(_in("kind", KINDS), name="ck_feedback_kind"),
        CheckConstraint(_in("source", SOURCES), name="ck_feedback_source"),
        CheckConstraint(_in("status", STATUSES), name="ck_feedback_status"),
        Index("ux_feedback_idem", "project_id", "idempotency_key", unique=True),
        Index("ix_feedback_subject", "interaction_id", "kind", "status"),
        Index("ix_feedback_kind_time", "project_id", "kind", "created_at"),
        Index("ix_feedback_actor_time", "project_id", "actor_id", "created_at"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    kind: Mapped[str] = mapped_column(String(16))
    interaction_id: Mapped[str | None] = mapped_column(ForeignKey("interactions.id"))
    score: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(String(200))
    text: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    actor_id: Mapped[str] = mapped_column(ForeignKey("actors.id"))
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="active")
    supersedes_id: Mapped[str | None] = mapped_column(ForeignKey("feedback.id"))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class FeedbackTarget(Base):
    __tablename__ = "feedback_targets"
    __table_args__ = (
        CheckConstraint(_in("role", TARGET_ROLES), name="ck_targets_role"),
        Index("ix_targets_interaction", "interaction_id", "role"),
    )
    feedback_id: Mapped[str] = mapped_column(ForeignKey("feedback.id", ondelete="CASCADE"), primary_key=True)
    interaction_id: Mapped[str] = mapped_column(ForeignKey("interactions.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    position: Mapped[int] = mapped_column(Integer, default=0)


class FeedbackSpan(Base):
    """Unicode code-point offsets (end exclusive) into the completion, plus the quoted text so that a
    span that no longer matches its completion is detected."""

    __tablename__ = "feedback_spans"
    __table_args__ = (
        CheckConstraint("end_cp > start_cp", name="ck_spans_order"),
        Index("ix_spans_interaction", "interaction_id"),
        Index("ix_spans_feedback", "feedback_id"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    feedback_id: Mapped[str] = mapped_column(ForeignKey("feedback.id", ondelete="CASCADE"))
    interaction_id: Mapped[str] = mapped_column(ForeignKey("interactions.id"))
    ordinal: Mapped[int] = mapped_column(Integer)
    start_cp: Mapped[int] = mapped_column(Integer)
    end_cp: Mapped[int] = mapped_column(Integer)
    quote: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(100))
    severity: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)


class Run(Base):
    """A training or evaluation run, so a model can be traced back to the feedback it learned from."""

    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    kind: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class DatasetBuild(Base):
    """Which feedback a dataset was built from: ``watermark`` is the newest feedback id included."""

    __tablename__ = "dataset_builds"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    builder: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    watermark: Mapped[str | None] = mapped_column(Id)
    rows: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]


class ServedTokens(Base):
    """What learning from a served answer needs (``refeed.types.Rollout``): the exact sampled token ids
    (EOS or stop tokens included), each one's log-prob under the sampling distribution, how it was
    sampled and which weights / adapter version did it. One row per served interaction;
    ``token_ids_exact`` is false for an upstream that returned text only (the id lists are empty)."""

    __tablename__ = "served_tokens"
    interaction_id: Mapped[str] = mapped_column(ForeignKey("interactions.id"), primary_key=True)
    prompt_ids: Mapped[list[Any]]
    completion_ids: Mapped[list[Any]]
    logprobs: Mapped[list[Any]]
    top_logprobs: Mapped[list[Any] | None]
    finish_reason: Mapped[str] = mapped_column(String(16))
    sampling: Mapped[dict[str, Any]] = mapped_column(default=dict)
    model_version: Mapped[str | None] = mapped_column(String(200))
    token_ids_exact: Mapped[bool]


class Annotator(Base):
    """A person who labels in the web UI, by the name they give (stored as feedback ``author``): the
    review queue assigns items to annotators, and the agreement view compares two of them."""

    __tablename__ = "annotators"
    __table_args__ = (Index("ux_annotators_name", "project_id", "name", unique=True),)
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class Assignment(Base):
    """One interaction in one annotator's review queue; done once they have judged it (not stored)."""

    __tablename__ = "assignments"
    __table_args__ = (
        Index("ux_assignments_item", "project_id", "interaction_id", "annotator_id", unique=True),
        Index("ix_assignments_annotator", "annotator_id"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    interaction_id: Mapped[str] = mapped_column(ForeignKey("interactions.id"))
    annotator_id: Mapped[str] = mapped_column(ForeignKey("annotators.id"))
    created_at: Mapped[datetime]
