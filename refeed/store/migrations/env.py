"""Alembic environment: the store passes its own connection (``refeed.store.engine.upgrade``)."""

from alembic import context

from refeed.store.tables import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
