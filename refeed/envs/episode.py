"""A multi-turn episode as the exact tokens served, with who produced each one.

Nothing is re-tokenized from messages (``../shared/ACCEPTANCE.md``, "Tokens are stored as sampled"):

- an assistant turn is the rollout's sampled ids (``Rollout.completion_ids``, the EOS included), appended
  only when the rollout was sampled from exactly this episode's ids (the prefix invariant);
- a user or environment turn adds only the tokens the chat template puts between the end of the served
  answer and the next generation prompt (``between``): for ChatML, ``\\n<|im_start|>user\\n...<|im_end|>\\n
  <|im_start|>assistant\\n`` after the sampled ``<|im_end|>``.

So the prompt of turn t+1 is the prompt of turn t, then its answer, then the feedback, token for token, and a
loss masks out everything the policy did not sample (``policy``: 1 per sampled token, 0 for the prompt and
the environment's tokens). A template that re-renders earlier turns (``reasoning``, which drops past
``<think>`` text) has no such suffix; it is refused with the reason, not silently re-tokenized.

    ep = start(tok, example.messages)
    ep = add_answer(ep, rollout)                     # rollout.prompt_ids must equal ep.ids
    ep = add_feedback(ep, tok, [{"role": "user", "content": "Try again."}])
    verify(ep, tok)                                  # the stored tokens still say what the messages say
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from refeed.types import Message, Rollout


@dataclass(frozen=True)
class Episode:
    """``ids`` every token so far; ``policy`` 1 where the policy sampled it; ``logprobs`` its sampling log-prob
    (0.0 elsewhere); ``answers`` the (start, end) of each assistant turn in ``ids`` and ``answer_at`` its index in
    ``messages``; ``feedback`` the (start, end) of each environment turn in ``ids`` and ``feedback_at`` its
    messages' (start, end); ``rewards`` one per answer; ``synthesized`` one per environment turn (True for a turn
    refeed made up, such as the "try again" before a logged regeneration); ``finish`` each answer's finish
    reason ("stop" / "length")."""

    messages: tuple[Message, ...]
    ids: tuple[int, ...]
    policy: tuple[int, ...]
    logprobs: tuple[float, ...]
    answers: tuple[tuple[int, int], ...] = ()
    answer_at: tuple[int, ...] = ()
    feedback: tuple[tuple[int, int], ...] = ()
    feedback_at: tuple[tuple[int, int], ...] = ()
    rewards: tuple[float, ...] = ()
    synthesized: tuple[bool, ...] = ()
    finish: tuple[str, ...] = ()

    @property
    def turns(self) -> int:
        return len(self.answers)


def render(tok, messages: Sequence[Message], generation_prompt: bool) -> str:
    chat = [{**m, "content": m.get("content") or ""} for m in messages]
    return tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=generation_prompt)


def encode(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def start(tok, messages: Sequence[Message]) -> Episode:
    """The first prompt: the chat template's tokens, generation prompt included."""
    ids = encode(tok, render(tok, messages, True))
    return Episode(tuple(messages), tuple(ids), (0,) * len(ids), (0.0,) * len(ids))


def add_answer(ep: Episode, rollout: Rollout, reward: float = 0.0) -> Episode:
    """``ep`` with the rollout's sampled tokens appended; refused unless it was sampled from ``ep.ids``."""
    if tuple(rollout.prompt_ids) != ep.ids:
        at = next((i for i, (a, b) in enumerate(zip(rollout.prompt_ids, ep.ids, strict=False)) if a != b),
                  min(len(rollout.prompt_ids), len(ep.ids)))
        raise ValueError(f"episode turn {ep.turns + 1}: the rollout was sampled from other tokens than the episode "
                         f"holds (they differ from token {at}); sample it from the episode's ids "
                         "(Generator.generate_ids), never from its messages")
    if not rollout.token_ids_exact:
        raise ValueError(f"episode turn {ep.turns + 1}: the rollout has no exact token ids (an upstream that "
                         "returns text only); a multi-turn episode needs the tokens served")
    n, at = len(rollout.completion_ids), len(ep.ids)
    return dataclasses.replace(
        ep, messages=(*ep.messages, {"role": "assistant", "content": rollout.completion}),
        ids=(*ep.ids, *rollout.completion_ids), policy=(*ep.policy, *([1] * n)),
        logprobs=(*ep.logprobs, *rollout.logprobs), answers=(*ep.answers, (at, at + n)),
        answer_at=(*ep.answer_at, len(ep.messages)), rewards=(*ep.rewards, reward),
        finish=(*ep.finish, rollout.finish_reason))


def between(tok, history: Sequence[Message], new: Sequence[Message], answer_ids: Sequence[int] = (),
            ended: bool = True) -> list[int]:
    """The tokens after the last served answer (``answer_ids``, its sampled ids; the last message of
    ``history``) up to the next generation prompt once ``new`` messages are added: the template's end of that
    answer turn, less the EOS when the answer ``ended`` with it, then the new turns and the generation prompt."""
    before, after = render(tok, history, False), render(tok, [*history, *new], True)
    head = render(tok, history[:-1], True)  # the prompt the answer was sampled from
    if not after.startswith(before) or not before.startswith(head):
        raise ValueError("the chat template renders earlier turns differently once a turn is added (as mistral's "
                         "moves the system text to the last user turn), so no episode can keep its served tokens; "
                         "use a template whose turns only append")
    last = history[-1].get("content") or ""
    if not before.startswith(head + last):
        raise ValueError("the chat template changes an answer's text (it trims or rewrites it), so the served "
                         "tokens cannot be followed by the template's; use a template that keeps answers as given")
    tail = before[len(head) + len(last):]
    eos = tok.eos_token or ""
    if ended and answer_ids and answer_ids[-1] == tok.eos_token_id and tail.startswith(eos):
        tail = tail[len(eos):]
    return encode(tok, tail + after[len(before):])


def add_feedback(ep: Episode, tok, new: Sequence[Message], synthesized: bool = False) -> Episode:
    """``ep`` with environment turns (``new``: user messages) appended as the template's tokens."""
    if not ep.answers or ep.answer_at[-1] != len(ep.messages) - 1:
        raise ValueError(f"episode turn {ep.turns}: feedback comes after an answer")
    if not new or any(not (m.get("content") or "").strip() for m in new):
        raise ValueError(f"episode turn {ep.turns}: the environment returned no feedback")
    (s, e), at = ep.answers[-1], len(ep.ids)
    ids = between(tok, ep.messages, new, ep.ids[s:e], ended=ep.finish[-1] == "stop")
    return dataclasses.replace(
        ep, messages=(*ep.messages, *new), ids=(*ep.ids, *ids), policy=(*ep.policy, *([0] * len(ids))),
        logprobs=(*ep.logprobs, *([0.0] * len(ids))), feedback=(*ep.feedback, (at, at + len(ids))),
        feedback_at=(*ep.feedback_at, (len(ep.messages), len(ep.messages) + len(new))),
        synthesized=(*ep.synthesized, synthesized))


def verify(ep: Episode, tok) -> None:
    """Refuse an episode whose stored tokens do not say what its messages say, naming the turn: the prompt and
    every environment turn must be the template's tokens, each answer's tokens must decode to its message, and
    the policy mask must cover the answers and nothing else."""
    first = ep.answers[0][0] if ep.answers else len(ep.ids)
    head = ep.answer_at[0] if ep.answers else len(ep.messages)
    if list(ep.ids[:first]) != encode(tok, render(tok, ep.messages[:head], True)):
        raise ValueError("episode turn 1: the prompt's tokens are not its messages' chat template")
    mask = [0] * len(ep.ids)
    for s, e in ep.answers:
        mask[s:e] = [1] * (e - s)
    if list(ep.policy) != mask:
        raise ValueError("episode: the policy mask does not cover exactly the answers' tokens")
    for k, ((s, e), m) in enumerate(zip(ep.answers, ep.answer_at, strict=True)):
        text, said = tok.decode(list(ep.ids[s:e]), skip_special_tokens=True), ep.messages[m]["content"] or ""
        if not text.startswith(said):  # the served tokens may end with a stop string the text drops
            raise ValueError(f"episode turn {k + 1}: the answer's tokens decode to {text[:40]!r}, its message says "
                             f"{said[:40]!r}")
    for k, ((s, e), (a, b)) in enumerate(zip(ep.feedback, ep.feedback_at, strict=True)):
        (x, y), turn = ep.answers[k], ep.answer_at[k]
        want = between(tok, ep.messages[:turn + 1], ep.messages[a:b], ep.ids[x:y], ended=ep.finish[k] == "stop")
        if a != turn + 1 or list(ep.ids[s:e]) != want:
            raise ValueError(f"episode turn {k + 1}: the feedback's tokens are not its messages' chat template")
