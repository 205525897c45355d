"""runs and dataset_builds: a run names its builds, a build keeps the exact feedback ids it used."""

import pytest

from refeed.store import NotFound, Store, provenance


def test_membership_is_the_exact_ids_not_a_watermark(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'fb.db'}")
    i = store.log(messages=[{"role": "user", "content": "2+2?"}], completion="4")
    late = store.feedback(i, "thumbs", up=True)
    early = store.feedback(i, "thumbs", up=False, idempotency_key="k")
    # An id that sorts first, written last (a client clock behind): a watermark would miss or include wrongly.
    from refeed.types import Feedback, FeedbackKind

    old = Feedback(FeedbackKind.RATING, interaction_id=i, score=1.0, payload={"scale": [0, 1]},
                   id="00000000000070008000000000000000")
    store.write_batch([old])
    ids = provenance.feedback_ids_of(store, [i, late, old.id, "not-an-id"])
    assert ids == sorted([late, old.id])  # the interaction id and the unknown id are not feedback
    build = provenance.record_build(store, "unpaired", {"good": 0.75}, ids, rows=1)
    assert provenance.members(store, build) == ids and early not in provenance.members(store, build)
    run = provenance.start_run(store, "train", {"objective": "kto"}, [build])
    assert provenance.get_run(store, run)["status"] == "running"
    provenance.finish_run(store, run, "finished", {"accuracy_after": 0.5})
    r = provenance.get_run(store, run)
    assert r["status"] == "finished" and r["metrics"] == {"accuracy_after": 0.5} and r["finished_at"]
    assert r["config"]["dataset_builds"] == [build]
    with pytest.raises(NotFound):
        provenance.members(store, "nope")
    with pytest.raises(ValueError, match="run status"):
        provenance.finish_run(store, run, "done", {})
