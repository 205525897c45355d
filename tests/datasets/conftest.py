import pytest


@pytest.fixture
def store(tmp_path):
    from refeed.store import Store

    s = Store(f"sqlite:///{tmp_path / 'feedback.db'}")
    yield s
    s.close()


def ask(store, question: str, *answers: str) -> list[str]:
    """Log ``answers`` to one user ``question``; returns their interaction ids."""
    return [store.log([{"role": "user", "content": question}], a) for a in answers]
