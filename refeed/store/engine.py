"""Engines and schema upgrades: SQLite by default (WAL, foreign keys on), PostgreSQL by URL."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, exc

MIGRATIONS = Path(__file__).with_name("migrations")
PING_AFTER_IDLE_S = 1.0  # a pooled PostgreSQL connection idle this long is pinged before use


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the settings the store relies on.

    SQLite: a new file is created 0600, WAL so readers never block the writer, foreign keys enforced, a 30 s busy timeout (the
    writer also retries), ``synchronous=NORMAL`` (durable across process crashes in WAL mode).
    Write transactions (``for_writing``) start with ``BEGIN IMMEDIATE`` so two writers never deadlock
    upgrading a read lock; reads start a plain deferred ``BEGIN`` and never block writers.
    """
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url[len("postgres://") :]
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if not url.startswith("sqlite"):
        return _postgresql(url)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        _private_file(Path(url[len("sqlite:///") :].partition("?")[0]).expanduser())
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        # Writers take the write lock up front (no deadlock upgrading a read lock); readers never take it.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

    return engine


def _private_file(path: Path) -> None:
    """Create a new database file readable by its owner only (0600): it holds every answer and the key
    hashes. SQLite gives its ``-wal`` and ``-shm`` files the database file's mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _postgresql(url: str) -> Engine:
    """A pooled PostgreSQL engine that pings a connection only when it has sat idle for a while.

    ``pool_pre_ping`` would ping on every checkout: one more round trip (and transaction) per write,
    about one in six of a group commit's round trips under load, where connections go back and forth
    many times a second. A connection idle longer than ``PING_AFTER_IDLE_S`` (a database restart
    may have closed it) is pinged as before, and a dead one is replaced before anyone uses it
    (SQLAlchemy's pessimistic "checkout" handler). One that dies while in steady use fails its
    statement; that transaction rolls back and its request is answered with an error, never with
    a false success.
    """
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _idle_since(_dbapi_conn, record):
        record.info["idle_since"] = time.monotonic()  # a new connection is known to be alive

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn, record, _proxy):
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as e:  # the pool drops it and checks out (or opens) another, up to three times
            raise exc.DisconnectionError(f"stale pooled connection: {e}") from e

    return engine


def for_writing(engine: Engine) -> Engine:
    """The same engine (same pool) whose transactions are writes: ``BEGIN IMMEDIATE`` on SQLite."""
    return engine.execution_options(write=True)


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (creates every table on a new database)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with for_writing(engine).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
