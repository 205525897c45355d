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


def plain(ds) -> list[dict]:
    """A builder's rows with every answer as its text (builders write TRL's conversational answers)."""
    from refeed.store.trl import ANSWERS, answer_text

    rows = ds.to_list() if hasattr(ds, "to_list") else list(ds)
    for r in rows:
        for c in ANSWERS:
            if c in r:
                r[c] = answer_text(r[c], c)
        if "completions" in r:
            r["completions"] = [answer_text(a) for a in r["completions"]]
    return rows
