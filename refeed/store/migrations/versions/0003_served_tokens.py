"""served tokens: the sampled ids, sampling log-probs, sampling parameters and model version of each
served answer (``refeed.store.tokens``)

Revision ID: 0003_served_tokens
Revises: 0002_annotation
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = "0003_served_tokens"
down_revision = "0002_annotation"
branch_labels = None
depends_on = None


def _json():
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "served_tokens",
        sa.Column("interaction_id", sa.String(length=36), nullable=False),
        sa.Column("prompt_ids", _json(), nullable=False),
        sa.Column("completion_ids", _json(), nullable=False),
        sa.Column("logprobs", _json(), nullable=False),
        sa.Column("top_logprobs", _json(), nullable=True),
        sa.Column("finish_reason", sa.String(length=16), nullable=False),
        sa.Column("sampling", _json(), nullable=False),
        sa.Column("model_version", sa.String(length=200), nullable=True),
        sa.Column("token_ids_exact", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["interaction_id"], ["interactions.id"]),
        sa.PrimaryKeyConstraint("interaction_id"),
    )


def downgrade() -> None:
    op.drop_table("served_tokens")
