"""``Store.builder_input`` (the builders' set-wise read) says what ``iter_feedback`` + ``answers`` say."""

from __future__ import annotations

from refeed.store import Store
from refeed.types import Feedback, FeedbackKind
from tests.store.test_kinds import CHAT, fill

VIEW_FIELDS = ("id", "kind", "interaction_id", "score", "label", "text", "payload", "targets")


def _paged(store: Store, kinds, project=None):
    """The record-by-record read builders used before: full records page by page, then answers by id."""
    fbs = list(store.iter_feedback(kinds=kinds, project=project, page_size=3))
    ids = {fb.interaction_id for fb in fbs if fb.interaction_id}
    ids.update(t["interaction_id"] for fb in fbs for t in fb.targets)
    return fbs, store.answers(ids, project=project)


def test_builder_input_matches_the_paged_records(store):
    ids = fill(store)
    store.feedback(ids["b"], "span", spans=[{"start": 0, "end": 1, "category": "wrong"}])  # a second span row
    old = store.get_feedback(ids["preference"])
    store.write_batch(
        [
            Feedback(
                kind=FeedbackKind.PREFERENCE, payload=old.payload, targets=old.targets, status="superseded"
            )
        ]
    )  # inactive: read by neither
    store.create_project("other")
    x, y = store.log(CHAT, "x", project="other"), store.log(CHAT, "y", project="other")
    store.feedback(x, "preference", rejected=y, project="other")  # another project's: not read here

    kinds = [k.value for k in FeedbackKind]
    views, answers = store.builder_input(kinds)
    fbs, want_answers = _paged(store, kinds)
    assert [tuple(getattr(f, n) for n in VIEW_FIELDS) for f in fbs] == [tuple(v) for v in views]
    assert answers == want_answers and len(answers) == 4  # a, b, c and the edit's corrected answer
    assert {str(v.kind) for v in views} == set(kinds)

    views, answers = store.builder_input(["preference"], project="other")
    assert [v.targets for v in views] == [
        [
            {"interaction_id": x, "role": "chosen", "position": 0},
            {"interaction_id": y, "role": "rejected", "position": 1},
        ]
    ]
    assert set(answers) == {x, y} and answers[x].messages == CHAT
    assert store.builder_input(["critique"], project="other") == ([], {})
