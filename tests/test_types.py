"""Plain types: ids."""

from refeed.types import new_id


def test_ids_increase_within_a_process():
    ids = [new_id() for _ in range(10_000)]  # many per millisecond
    assert ids == sorted(ids) and len(set(ids)) == len(ids) and all(len(i) == 32 for i in ids)
