"""The store side of the annotation UI, on SQLite and PostgreSQL: retract and supersede keep the history,
the "proposed" status, annotators and assignments, the queue's progress and filters, agreement, and the
0002_annotation migration over a database holding 0001 data (targets and spans must survive it)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from refeed.store import Store, ValidationFailed, review
from refeed.store import annotation as ann
from refeed.store.records import feedback_record
from refeed.types import Feedback, FeedbackKind

Q = [{"role": "user", "content": "2+2?"}]


def _thumb(i, up: bool, author="ana", key=None) -> Feedback:
    return feedback_record(i, "thumbs", source="human", author=author, idempotency_key=key, fields={"up": up})


def test_retract_and_supersede_keep_the_history(store):
    i = store.log(Q, "4")
    up = store.feedback(i, "thumbs", up=True, author="ana")
    down = ann.supersede(store, up, _thumb(i, False, key="k2"))
    assert ann.supersede(store, up, _thumb(i, False, key="k2")) == down  # a replay changes nothing
    rows = {r["id"]: r for r in ann.history(store, [i])}
    assert (rows[up]["status"], rows[down]["status"], rows[down]["supersedes_id"]) == (
        "superseded",
        "active",
        up,
    )
    assert rows[down]["score"] == 0 and rows[down]["author"] == "ana"
    with pytest.raises(ValidationFailed, match="superseded"):
        ann.supersede(store, up, _thumb(i, True, key="k3"))  # only the newest row can change
    assert [f.id for f in store.iter_feedback()] == [down]  # builders see the newest judgement only
    assert ann.retract(store, down) == "retracted" and ann.retract(store, down) == "retracted"
    assert list(store.iter_feedback()) == []
    other = store.log(Q, "5")
    with pytest.raises(ValidationFailed, match="other interactions"):
        ann.supersede(store, down, _thumb(other, True))
    crit = feedback_record(
        i, "critique", source="human", author=None, idempotency_key=None, fields={"text": "x"}
    )
    with pytest.raises(ValidationFailed, match="critique cannot supersede a rating"):
        ann.supersede(store, store.feedback(i, "thumbs", up=True), crit)


def test_proposed_rows_wait_for_a_person(store):
    i = store.log(Q, "4")
    fb = Feedback(
        kind=FeedbackKind.RATING, interaction_id=i, score=5, payload={"scale": [1, 5]}, status="proposed"
    )
    (fid,) = store.write_batch([fb])
    assert list(store.iter_feedback()) == []  # not active until accepted
    assert ann.decide(store, fid, accept=True) == "active"
    assert [f.id for f in store.iter_feedback()] == [fid]
    with pytest.raises(ValidationFailed, match="not proposed"):
        ann.decide(store, fid, accept=False)


def test_queue_progress_filters_and_assignments(store):
    a = store.log(Q, "4", model="m1")
    b = store.log(Q, "5", model="m1")
    c = store.log(Q, "6", model="m2")
    store.feedback(a, "thumbs", up=True, author="ana")
    store.feedback(b, "followup", text="thanks", source="implicit")  # implicit: b stays unlabelled
    q = review.queue(store)
    assert (q["total"], q["labelled"], [x["id"] for x in q["items"]]) == (3, 1, [b, c])
    assert q["models"] == ["m1", "m2"]
    assert [x["id"] for x in review.queue(store, model="m1", labelled="all")["items"]] == [a, b]
    assert [x["id"] for x in review.queue(store, kind="critique")["items"]] == [a, b, c]
    assert ann.assign(store, "ben", [a, c]) == 2 and ann.assign(store, "ben", [a]) == 0
    mine = review.queue(store, annotator="ben", labelled="all")
    assert (mine["total"], mine["labelled"]) == (2, 0)  # ana's label on a is not ben's
    assert mine["items"][0]["assignees"] == ["ben"]
    store.feedback(c, "rating", score=2, author="ben")
    assert review.queue(store, annotator="ben")["labelled"] == 1
    assert {x["name"]: x["assigned"] for x in ann.annotators(store)} == {"ana": 0, "ben": 2}
    with pytest.raises(ValidationFailed):
        review.queue(store, kind="nonsense")


def test_agreement_lists_where_two_annotators_differ(store):
    x, y = store.log(Q, "4"), store.log(Q, "5")
    for who, score in (("ana", 5), ("ben", 2)):
        store.feedback(x, "rating", score=score, author=who)
    for who in ("ana", "ben"):
        store.feedback(y, "thumbs", up=True, author=who)
        store.feedback(x, "preference", rejected=y, author=who)
    got = review.agreement(store, "ana", "ben")
    assert (got["compared"], got["agreed"]) == (3, 2)
    (d,) = got["disagreements"]
    assert (d["kind"], d["a"], d["b"], d["answers"]) == ("rating", 5, 2, ["4"])
    assert review.pairwise(store) == [{"a": "ana", "b": "ben", "compared": 3, "agreed": 2, "rate": 2 / 3}]
    t = review.timeline(store)
    assert t["bucket"] == "hour" and sum(p["n"] for p in t["points"]) == 6


def test_migration_keeps_0001_data(store_url):
    """Upgrade a database made at 0001 that holds a preference (targets) and a span: nothing is lost."""
    from alembic import command
    from alembic.config import Config

    from refeed.store.engine import MIGRATIONS, for_writing, make_engine

    engine = make_engine(store_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))

    def to(rev, down=False):
        with for_writing(engine).begin() as conn:
            cfg.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(cfg, rev)

    to("0001")
    from sqlalchemy import inspect

    assert "annotators" not in inspect(engine).get_table_names()
    old = Store.__new__(Store)  # the SDK on a 0001 schema: write before upgrading
    old.__dict__.update(url=store_url, engine=engine, _writes=for_writing(engine), project="default",
                          _project_ids={})  # fmt: skip
    old.create_project("default")
    a, b = old.log(Q, "four"), old.log(Q, "five")
    old.feedback(a, "preference", rejected=b)
    old.feedback(a, "span", start=0, end=2, category="style")
    to("head")
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from refeed.store.tables import Base

    with engine.connect() as conn:  # the migrated schema is the one tables.py declares
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    store = Store(store_url)  # upgrades nothing more
    (pref,) = store.iter_feedback(kinds=["preference"])
    (span,) = store.iter_feedback(kinds=["span"])
    assert len(pref.targets) == 2 and span.payload["spans"][0]["quote"] == "fo"
    (fid,) = store.write_batch(
        [Feedback(kind=FeedbackKind.RATING, interaction_id=a, score=1, status="proposed")]
    )
    with pytest.raises(Exception, match="(?i)check"):
        with store._writes.begin() as conn:
            conn.execute(text("UPDATE feedback SET status = 'bogus' WHERE id = :i"), {"i": fid})
    with pytest.raises(RuntimeError, match="proposed"):
        to("0001", down=True)
    ann.decide(store, fid, accept=True)
    to("0001", down=True)  # and back down, with the old CHECK in place again
    with pytest.raises(Exception, match="(?i)check"):
        with store._writes.begin() as conn:
            conn.execute(text("UPDATE feedback SET status = 'proposed' WHERE id = :i"), {"i": fid})
    store.close()
