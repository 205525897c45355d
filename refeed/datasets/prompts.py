"""Prompts for the online loop from what users asked: the distinct last user messages of a store's interactions.

    rows = logged_prompts(Store("sqlite:///feedback.db"))      # [{"prompt": [...messages], "source_ids": [id]}]

Each row's ``prompt`` is the conversation up to and including its last user message (so a follow-up question
keeps the turns it follows), taken from the first interaction that ended on that user message; later
interactions with the same last user message are regenerations or repeats and add nothing. Answers the online
loop logged itself (``metadata.origin == "online"``) are skipped: they are rollouts, not user prompts.
No torch here.
"""

from __future__ import annotations

from typing import Any

SKIP_ORIGINS = ("online",)


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of OpenAI's content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def logged_prompts(store, *, limit: int = 0, model: str | None = None, project: str | None = None,
                   skip_origins: tuple[str, ...] = SKIP_ORIGINS) -> list[dict[str, Any]]:
    """One row per distinct last user message, oldest first (at most ``limit``; 0: all)."""
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    for it in store.iter_interactions(model=model, project=project):
        if (it.metadata or {}).get("origin") in skip_origins:
            continue
        users = [i for i, m in enumerate(it.messages) if m.get("role") == "user"]
        if not users:
            continue
        text = _text(it.messages[users[-1]].get("content")).strip()
        if not text or text in seen:
            continue
        seen.add(text)
        rows.append({"prompt": [dict(m) for m in it.messages[: users[-1] + 1]], "source_ids": [it.id]})
        if limit and len(rows) >= limit:
            break
    return rows
