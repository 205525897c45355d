from refeed.tasks import get_task, oracle
from refeed.types import FeedbackKind, Interaction, Source


def _setup():
    task = get_task("arithmetic")
    ex = task.examples("train")[0]
    wrong = str(int(ex.answer) + 1)
    its = [Interaction(list(ex.messages), t) for t in (ex.answer, wrong, ex.answer, "??")]
    return task, ex, its


def test_thumbs_follow_the_verifier():
    task, ex, its = _setup()
    fb = oracle.thumbs(task, ex, its)
    assert [f.score for f in fb] == [1.0, 0.0, 1.0, 0.0]
    assert all(f.kind is FeedbackKind.RATING and f.source is Source.SIMULATED for f in fb)
    assert [f.interaction_id for f in fb] == [it.id for it in its]


def test_preferences_put_correct_over_incorrect_and_drop_ties():
    task, ex, its = _setup()
    all_pairs = oracle.preferences(task, ex, its, max_pairs=None)
    assert len(all_pairs) == 4  # 2 correct x 2 incorrect; the 2 ties (both right, both wrong) are dropped
    for fb in all_pairs:
        roles = {t["role"]: t["interaction_id"] for t in fb.targets}
        chosen = next(it for it in its if it.id == roles["chosen"])
        rejected = next(it for it in its if it.id == roles["rejected"])
        assert task.verify(ex, chosen.completion).correct and not task.verify(ex, rejected.completion).correct
    assert len(oracle.preferences(task, ex, its, max_pairs=1)) == 1
    assert oracle.preferences(task, ex, its[:1] + its[2:3], max_pairs=None) == []  # all correct: no pair


def test_outcomes_record_pass_fail_and_what_was_read():
    task, ex, its = _setup()
    out = oracle.outcomes(task, ex, its)
    assert [o.label for o in out] == ["pass", "fail", "pass", "fail"]
    assert out[1].payload["extracted"] == str(int(ex.answer) + 1) and out[3].payload["extracted"] is None
