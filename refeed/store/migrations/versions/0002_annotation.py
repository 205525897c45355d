"""annotation: annotators, assignments, and the "proposed" feedback status

Revision ID: 0002_annotation
Revises: 0001

The web UI's review queue assigns interactions to annotators (``annotators``, ``assignments``), and
machine-made feedback that waits for a person (an AI judge's label, a memory candidate rule) is stored
with ``status='proposed'``, which the old CHECK on ``feedback.status`` refused.

Widening that CHECK on SQLite: the usual copy-and-rename of ``feedback`` would, with foreign keys on,
drop the old table through an implicit DELETE that cascades to ``feedback_targets`` and
``feedback_spans``. A CHECK that accepts more values changes no stored row, so SQLite's documented
shortcut for that case applies instead (https://www.sqlite.org/lang_altertable.html, "making other
kinds of table schema changes", the 7-step procedure): rewrite the table's SQL in ``sqlite_schema`` and
bump ``schema_version`` in the same transaction. PostgreSQL drops and re-adds the constraint.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_annotation"
down_revision = "0001"
branch_labels = None
depends_on = None

OLD = "status IN ('active', 'superseded', 'retracted')"
NEW = "status IN ('active', 'superseded', 'retracted', 'proposed')"


def upgrade() -> None:
    op.create_table(
        "annotators",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("annotators", schema=None) as batch_op:
        batch_op.create_index("ux_annotators_name", ["project_id", "name"], unique=True)
    op.create_table(
        "assignments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("interaction_id", sa.String(length=36), nullable=False),
        sa.Column("annotator_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["annotator_id"], ["annotators.id"]),
        sa.ForeignKeyConstraint(["interaction_id"], ["interactions.id"]),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index("ix_assignments_annotator", ["annotator_id"], unique=False)
        batch_op.create_index(
            "ux_assignments_item", ["project_id", "interaction_id", "annotator_id"], unique=True
        )
    _status_check(OLD, NEW)


def downgrade() -> None:
    conn = op.get_bind()
    n = conn.execute(sa.text("SELECT count(*) FROM feedback WHERE status = 'proposed'")).scalar()
    if n:
        raise RuntimeError(f"{n} feedback rows are 'proposed'; accept or retract them before downgrading")
    _status_check(NEW, OLD)
    op.drop_table("assignments")
    op.drop_table("annotators")


def _status_check(old: str, new: str) -> None:
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        op.drop_constraint("ck_feedback_status", "feedback", type_="check")
        op.create_check_constraint("ck_feedback_status", "feedback", new)
        return
    sql = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'feedback'"
    ).scalar()
    if sql.count(old) != 1:
        raise RuntimeError(f"feedback's CREATE TABLE does not hold the CHECK {old!r} once:\n{sql}")
    version = conn.exec_driver_sql("PRAGMA schema_version").scalar()
    conn.exec_driver_sql("PRAGMA writable_schema = ON")
    conn.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'feedback'",
        (sql.replace(old, new),),
    )
    conn.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    conn.exec_driver_sql("PRAGMA writable_schema = OFF")
