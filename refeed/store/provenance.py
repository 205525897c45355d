"""Which feedback a model learned from: the ``runs`` and ``dataset_builds`` rows every training run writes.

    build_id = record_build(store, "pairs", {"sources": ["preference"]}, feedback_ids, rows=812)
    run_id = start_run(store, "train", config, build_ids=[build_id])
    finish_run(store, run_id, "finished", {"accuracy_after": 0.61})
    members(store, build_id)  -> the feedback ids, exactly as used

Membership is the list of feedback ids a dataset used (``params["feedback_ids"]``), never a newest-id
watermark: feedback ids are UUIDv7 made by clients, so a delayed batch, a skewed clock or an imported row can
sort below any watermark (../shared/ACCEPTANCE.md, "One store schema, one history"). ``watermark`` stays NULL.
The ids are kept as given, so ids not in this store (rows from a file built elsewhere) are kept too;
``feedback_ids_of`` keeps the ids of ``source_ids`` that name feedback of this store.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import insert, select, update

from refeed.store import records
from refeed.store.errors import NotFound
from refeed.store.tables import DatasetBuild, FeedbackRow, Run
from refeed.types import new_id

RUN_STATUSES = ("running", "finished", "failed")


def feedback_ids_of(store, source_ids: Iterable[str], project: str | None = None) -> list[str]:
    """The ids among ``source_ids`` (a dataset's feedback and interaction ids) that are feedback of the
    project, sorted and unique."""
    wanted, pid, found = sorted(set(source_ids)), store._pid(project), []
    with store.engine.connect() as conn:
        for start in range(0, len(wanted), 500):
            part = wanted[start:start + 500]
            q = select(FeedbackRow.id).where(FeedbackRow.project_id == pid, FeedbackRow.id.in_(part))
            found += [r[0] for r in conn.execute(q)]
    return sorted(found)


def record_build(store, builder: str, params: dict[str, Any], feedback_ids: Iterable[str], rows: int,
                 project: str | None = None) -> str:
    """Write one ``dataset_builds`` row whose membership is ``feedback_ids``; returns its id."""
    bid = new_id()
    body = {**params, "feedback_ids": sorted(set(feedback_ids))}
    with store._writes.begin() as conn:
        conn.execute(insert(DatasetBuild).values(id=bid, project_id=store._pid(project), builder=builder,
                                                 params=body, watermark=None, rows=rows, created_at=records.now()))
    return bid


def members(store, build_id: str) -> list[str]:
    """The feedback ids dataset build ``build_id`` used."""
    with store.engine.connect() as conn:
        params = conn.execute(select(DatasetBuild.params).where(DatasetBuild.id == build_id)).scalar()
    if params is None:
        raise NotFound(f"unknown dataset build {build_id!r}")
    return list(params.get("feedback_ids", []))


def start_run(store, kind: str, config: dict[str, Any], build_ids: Iterable[str] = (),
              project: str | None = None) -> str:
    """Write a ``runs`` row (status running) naming the dataset builds it trains on; returns its id."""
    rid = new_id()
    with store._writes.begin() as conn:
        conn.execute(insert(Run).values(id=rid, project_id=store._pid(project), kind=kind,
                                        config={**config, "dataset_builds": list(build_ids)}, status="running",
                                        metrics={}, started_at=records.now(), finished_at=None))
    return rid


def finish_run(store, run_id: str, status: str, metrics: dict[str, Any]) -> None:
    """Close run ``run_id`` with ``status`` (finished / failed) and its final metrics."""
    if status not in RUN_STATUSES:
        raise ValueError(f"run status must be one of {RUN_STATUSES}, got {status!r}")
    with store._writes.begin() as conn:
        n = conn.execute(update(Run).where(Run.id == run_id).values(status=status, metrics=metrics,
                                                                     finished_at=records.now())).rowcount
    if not n:
        raise NotFound(f"unknown run {run_id!r}")


def get_run(store, run_id: str) -> dict[str, Any]:
    """A run row as a dict (id, kind, config, status, metrics, started_at, finished_at)."""
    with store.engine.connect() as conn:
        r = conn.execute(select(Run.__table__).where(Run.id == run_id)).mappings().first()
    if r is None:
        raise NotFound(f"unknown run {run_id!r}")
    return {k: r[k] for k in ("id", "kind", "config", "status", "metrics", "started_at", "finished_at")}
