"""Served answers as ``Rollout``s: the tokens as sampled, logged next to the interaction they belong to.

    ids = log_rollouts(store, rollouts, params={"temperature": 0.7})   # interactions + served_tokens, one commit
    rollouts(store, ids)[ids[0]].completion_ids                         # back, exactly as sampled
    for r in iter_rollouts(store, exact_only=True): ...                 # served traffic for the online loops

Learning from served traffic needs what the text cannot give back: the sampled token ids (the EOS or
stop token included, even where the text drops the stop string), each token's log-prob under the
distribution it was drawn from, the sampling parameters and the weights / adapter version
(``../shared/ACCEPTANCE.md``, "Tokens are stored as sampled"). Tokenizing the logged text again
would drift (a cut-off answer gains an EOS it never sampled; a stop string loses its tokens), so
these live in their own table (``served_tokens``), one row per interaction. Rows from an upstream
that returned text only are flagged ``token_ids_exact=False`` with empty id lists; the losses that
need ids refuse or re-score them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import insert, select

from refeed.store import records, writer
from refeed.store.tables import InteractionRow, ServedTokens
from refeed.types import Feedback, FinishReason, Rollout, SamplingParams


def log_rollouts(
    store,
    rollouts: Sequence[Rollout],
    *,
    params: dict | None = None,
    thread_id: str | None = None,
    parent_id: str | None = None,
    metadata: dict | None = None,
    extra: Sequence[Feedback] = (),
    project: str | None = None,
) -> list[str]:
    """Log each rollout as an interaction (id ``rollout.id``) with its token row, and ``extra`` feedback,
    in one transaction; returns the interaction ids. Rollouts of one prompt share its context hash,
    so ``n`` samples are sibling answers."""
    inter = [
        records.interaction_record(
            r.messages, r.completion, model=r.model, params=dict(params or {}), thread_id=thread_id,
            parent_id=parent_id, id=r.id,
            metadata={"origin": "served", "finish_reason": str(r.finish_reason), **(metadata or {}),
                      **({"choice": k, "n": len(rollouts)} if len(rollouts) > 1 else {})},
        )
        for k, r in enumerate(rollouts)
    ]
    rows = [_row(r) for r in rollouts]

    def add_tokens(conn, ids):
        new = [row for row, stored in zip(rows, ids, strict=False) if stored == row["interaction_id"]]
        have = set(conn.execute(select(ServedTokens.interaction_id).where(
            ServedTokens.interaction_id.in_([row["interaction_id"] for row in new]))).scalars()) if new else set()
        new = [row for row in new if row["interaction_id"] not in have]  # a replayed id keeps its first row
        if new:
            conn.execute(insert(ServedTokens), new)

    ids = writer.write(store._writes, store._pid(project), [*inter, *extra], after=add_tokens)
    return ids[: len(inter)]


def _row(r: Rollout) -> dict[str, Any]:
    return {
        "interaction_id": r.id,
        "prompt_ids": list(r.prompt_ids),
        "completion_ids": list(r.completion_ids),
        "logprobs": list(r.logprobs),
        "top_logprobs": [{str(k): v for k, v in t.items()} for t in r.top_logprobs] if r.top_logprobs else None,
        "finish_reason": str(r.finish_reason),
        "sampling": r.sampling.to_dict(),
        "model_version": r.version,
        "token_ids_exact": r.token_ids_exact,
    }


def rollouts(store, ids: Iterable[str], project: str | None = None) -> dict[str, Rollout]:
    """The rollouts of interactions ``ids`` that were served with token rows (others are absent)."""
    ids, pid, out = list(dict.fromkeys(ids)), store._pid(project), {}
    with store.engine.connect() as conn:
        for i in range(0, len(ids), writer.CHUNK):
            q = _joined().where(ServedTokens.interaction_id.in_(ids[i : i + writer.CHUNK]))
            out.update((r.id, r) for r in _rollouts(conn.execute(q).all(), pid))
    return out


def iter_rollouts(store, *, model: str | None = None, exact_only: bool = False, page_size: int = 500,
                  project: str | None = None) -> Iterator[Rollout]:
    """Every served rollout, oldest first, in pages (keyset on the interaction id); ``exact_only``
    skips the rows of an upstream that returned no token ids."""
    pid, last = store._pid(project), None
    while True:
        q = _joined().where(InteractionRow.project_id == pid).order_by(ServedTokens.interaction_id).limit(page_size)
        if model is not None:
            q = q.where(InteractionRow.model == model)
        if exact_only:
            q = q.where(ServedTokens.token_ids_exact.is_(True))
        if last is not None:
            q = q.where(ServedTokens.interaction_id > last)
        with store.engine.connect() as conn:
            page = conn.execute(q).all()
        yield from _rollouts(page, pid)
        if len(page) < page_size:
            return
        last = page[-1].interaction_id


def _joined():
    return select(ServedTokens.__table__, InteractionRow.project_id, InteractionRow.messages, InteractionRow.completion,
                  InteractionRow.model).join(InteractionRow, InteractionRow.id == ServedTokens.interaction_id)


def _rollouts(rows, pid: str) -> list[Rollout]:
    return [
        Rollout(
            messages=row.messages, prompt_ids=row.prompt_ids,
            completion_ids=row.completion_ids, logprobs=row.logprobs,
            completion=row.completion, finish_reason=FinishReason(row.finish_reason),
            model=row.model or "", version=row.model_version,
            sampling=SamplingParams.from_dict(row.sampling),
            top_logprobs=[{int(k): v for k, v in t.items()} for t in row.top_logprobs]
            if row.top_logprobs else None,
            token_ids_exact=row.token_ids_exact, id=row.interaction_id,
        )
        for row in rows
        if row.project_id == pid  # another project's answer looks absent
    ]
