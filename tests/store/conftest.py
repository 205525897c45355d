"""Store fixtures: every store test runs on SQLite and on a real PostgreSQL server.

The PostgreSQL server is the session's ``pg_server_url`` (tests/conftest.py); each test gets its own
database.
"""

from __future__ import annotations

import pytest

from tests.conftest import fresh_pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.db'}"
    return fresh_pg_database(request.getfixturevalue("pg_server_url"))


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
