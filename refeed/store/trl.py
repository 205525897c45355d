"""TRL's dataset types, read and written in one place (``trl/docs/source/dataset_formats.md``).

TRL has four types refeed reads and writes, each *standard* (text) or *conversational* (chat messages):

    language modeling     {"text"}                        {"messages": [..., assistant]}
    prompt-completion     {"prompt", "completion"}        prompt: messages, completion: [assistant]
    preference            {"prompt", "chosen", "rejected"}, or implicit: {"chosen", "rejected"} whole
                          texts / conversations whose shared beginning is the prompt (HH-RLHF, UltraFeedback)
    unpaired preference   {"prompt", "completion", "label"}

TRL decides per row whether it is conversational from whichever of those columns it looks at first, so a
row must be conversational in every column: a message-list prompt with text answers fails in its
tokenizer step (``can only concatenate list (not "str") to list``). ``conversational`` writes answers the
way the prompt is; ``explicit`` reads every type above into one shape (an explicit ``prompt``, answers
as TRL wrote them), so the importer and the training loader share one reading. No torch here.
"""

from __future__ import annotations

from typing import Any

ANSWERS = ("chosen", "rejected", "completion")  # the columns that hold one answer
TYPES = ("preference", "unpaired preference", "prompt-completion", "language modeling")


def is_chat(value: Any) -> bool:
    """A list of chat messages (TRL's test: a list whose first item is a dict with a ``role``)."""
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and "role" in value[0]


def assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def conversational(columns: dict[str, list]) -> dict[str, Any]:
    """Column-wise rows (name -> values) with every answer (and each of ``completions``) as an assistant
    message list in the rows whose prompt is a chat, so TRL reads them as conversational in every column.
    Rows with a text prompt stay standard. An answer column may come back as an Arrow array (for
    ``datasets.Dataset.from_dict``)."""
    if "prompt" not in columns:
        return columns
    chats = [isinstance(p, list) for p in columns["prompt"]]  # an empty chat too: one column, one type
    out = dict(columns)
    for c in ANSWERS:
        if c not in out:
            continue
        if all(chats) and all(isinstance(a, str) for a in out[c]):  # the usual build: one Arrow array, no dicts
            out[c] = _assistant_array(out[c])
        else:
            out[c] = [assistant(a) if chat and isinstance(a, str) else a for chat, a in zip(chats, out[c], strict=True)]
    if "completions" in out:
        out["completions"] = [[assistant(a) if isinstance(a, str) else a for a in answers] if chat else answers
                              for chat, answers in zip(chats, out["completions"], strict=True)]
    return out


def _assistant_array(texts: list[str]):
    """``[assistant(t) for t in texts]`` as an Arrow list<struct<role, content>> array, built column-wise:
    a million-pair build makes no million dicts (the same values and type ``datasets`` infers from the dicts)."""
    import pyarrow as pa

    content = pa.array(texts, pa.string())
    role = pa.array(["assistant"] * len(texts), pa.string())
    messages = pa.StructArray.from_arrays([role, content], names=["role", "content"])
    return pa.ListArray.from_arrays(pa.array(range(len(texts) + 1), pa.int32()), messages)


def answer_text(answer: Any, column: str = "answer") -> str:
    """The text of one answer: text, or a one-message assistant list. refeed keeps one assistant message
    per answer, so a longer list is refused rather than cut (its earlier turns belong in the prompt)."""
    if isinstance(answer, str):
        return answer
    if is_chat(answer):
        if len(answer) != 1 or answer[0].get("role") != "assistant" or not isinstance(answer[0].get("content"), str):
            roles = [m.get("role") for m in answer]
            raise ValueError(f"field '{column}': an answer must be one assistant message with text content, got "
                             f"roles {roles}; put earlier turns in the prompt")
        return answer[0]["content"]
    raise ValueError(f"field '{column}': must be text or a list with one assistant message, got {type(answer).__name__}")


def trl_type(columns) -> str | None:
    """Which of ``TYPES`` a row with ``columns`` is (None: none of them)."""
    cols = set(columns)
    if {"chosen", "rejected"} <= cols:
        return "preference"
    if {"prompt", "completion", "label"} <= cols:
        return "unpaired preference"
    if {"prompt", "completion"} <= cols:
        return "prompt-completion"
    if "messages" in cols or "text" in cols:
        return "language modeling"
    return None


def explicit(row: dict) -> dict:
    """Any row of ``TYPES`` as one with an explicit ``prompt`` and its answer columns; other keys kept.

    - implicit-prompt preference: the longest shared beginning of ``chosen`` and ``rejected`` (messages,
      or characters for text, as TRL's ``extract_prompt``) is the prompt; a ``prompt`` column of the other
      form than ``chosen`` (text beside whole conversations, as some hub datasets add) is replaced too,
      and a chat prompt that the whole conversations repeat is cut from them;
    - conversational language modeling: the last message (the assistant's) is the completion;
    - standard language modeling: an empty prompt and the text as the completion.
    """
    kind = trl_type(row)
    if kind is None:
        raise ValueError(f"a TRL row needs the columns of one of: {_COLUMNS}; got {sorted(row)}")
    if kind == "preference":
        prompt, chosen = row.get("prompt"), row["chosen"]
        if "prompt" not in row or (is_chat(chosen) and not is_chat(prompt)):
            return {**row, **_extract_prompt(chosen, row["rejected"])}
        if is_chat(prompt) and is_chat(chosen) and _starts_with(chosen, prompt) and _starts_with(row["rejected"], prompt):
            return {**row, "chosen": chosen[len(prompt):], "rejected": row["rejected"][len(prompt):]}
    if kind == "language modeling" and "prompt" not in row:
        rest = {k: v for k, v in row.items() if k not in ("messages", "text")}
        if "messages" in row:
            msgs = list(row["messages"])
            if not is_chat(msgs) or msgs[-1].get("role") != "assistant":
                raise ValueError("field 'messages': must be chat messages ending with the assistant's answer")
            return {**rest, "prompt": msgs[:-1], "completion": msgs[-1:]}
        if not isinstance(row["text"], str):
            raise ValueError("field 'text': must be text")
        return {**rest, "prompt": "", "completion": row["text"]}
    return row


_COLUMNS = "{chosen, rejected} (+ prompt), {prompt, completion} (+ label), {messages} or {text}"


def _starts_with(conversation: list, prompt: list) -> bool:
    """A whole conversation that repeats the prompt before its answer."""
    return is_chat(conversation) and len(conversation) > len(prompt) and conversation[: len(prompt)] == prompt


def _extract_prompt(chosen: Any, rejected: Any) -> dict:
    """The shared beginning of two whole answers as the prompt; each answer keeps the rest."""
    if is_chat(chosen) != is_chat(rejected) or not (is_chat(chosen) or isinstance(chosen, str)):
        raise ValueError("fields 'chosen' and 'rejected' must both be text or both be chat messages")
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    if is_chat(chosen):
        if n == len(chosen) or n == len(rejected):
            raise ValueError("fields 'chosen' and 'rejected': one conversation is the start of the other, so "
                             "there is no answer after the shared prompt")
        return {"prompt": chosen[:n], "chosen": chosen[n:], "rejected": rejected[n:]}
    if n and n < len(chosen) and chosen[n - 1] == " ":  # TRL keeps the space with the answer
        n -= 1
    return {"prompt": chosen[:n], "chosen": chosen[n:], "rejected": rejected[n:]}


def explicit_rows(rows: list[dict]) -> list[dict]:
    """``explicit`` on every row of a TRL type, the row number in the error; answers checked with
    ``answer_text``. Rows of refeed's other shapes (groups, principles) pass as they are."""
    out = []
    for n, row in enumerate(rows):
        if trl_type(row) is None:
            out.append(row)
            continue
        try:
            r = explicit(row)
            for c in ANSWERS:
                if c in r:
                    answer_text(r[c], c)
        except ValueError as e:
            raise ValueError(f"row {n}: {e}") from None
        out.append(r)
    return out
