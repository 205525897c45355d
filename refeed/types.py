"""Plain data shared by every layer: chat messages, interactions, feedback records, samples.

No third-party imports here, so the store, the API and the training code can all speak these
types without pulling each other in. The store persists them (``refeed.store``), the simulated
oracle produces them (``refeed.tasks.oracle``), and the builders turn them into datasets.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

Message = dict[str, Any]  # OpenAI chat format: {"role": "user"|"assistant"|"system"|"tool", "content": str, ...}


_clock = {"ms": 0, "seq": 0}
_clock_lock = threading.Lock()


def new_id() -> str:
    """A fresh time-ordered id (UUIDv7 layout, 32 hex digits), strictly increasing within a process.

    The first 48 bits are milliseconds since the epoch; the 12 bits after the version count up within
    one millisecond (RFC 9562's "fixed-length dedicated counter"), so ids made one after another sort
    in that order and keyset pagination on ``id`` follows insertion order. The last 62 bits are random.
    Ids are strings everywhere so they survive JSON and URLs.
    """
    with _clock_lock:
        ms = max(time.time_ns() // 1_000_000, _clock["ms"])
        if ms == _clock["ms"]:
            _clock["seq"] += 1
            if _clock["seq"] > 0xFFF:  # 4,096 ids in one millisecond: borrow the next one
                ms, _clock["seq"] = ms + 1, 0
        else:
            _clock["seq"] = 0
        _clock["ms"], seq = ms, _clock["seq"]
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    return f"{(ms << 80) | (0x7 << 76) | (seq << 64) | (0b10 << 62) | rand:032x}"


class FeedbackKind(StrEnum):
    """Every kind of feedback refeed records (DESIGN.md, "Data model")."""

    RATING = "rating"  # score on a scale; thumbs is a 2-point scale (0, 1)
    PREFERENCE = "preference"  # chosen vs rejected, or tie / both bad
    RANKING = "ranking"  # k candidates with positions and tie groups
    CRITIQUE = "critique"  # free text, optional aspect
    EDIT = "edit"  # a corrected completion
    SPAN = "span"  # character spans with category, severity, comment
    RETRY = "retry"  # "try again": the rejected answer and its regeneration
    FOLLOWUP = "followup"  # the next user message
    PRINCIPLE = "principle"  # a standing rule with its scope
    SIGNAL = "signal"  # implicit: copy, share, dwell, click ... with a logging propensity
    OUTCOME = "outcome"  # a verifier's pass / fail and score


class Source(StrEnum):
    """Who or what gave a piece of feedback."""

    HUMAN = "human"
    AI_JUDGE = "ai_judge"
    RULE = "rule"
    IMPLICIT = "implicit"
    SIMULATED = "simulated"


@dataclass
class Interaction:
    """One answer in context: the chat so far (``messages``) and the model's ``completion``."""

    messages: list[Message]
    completion: str
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_id)
    thread_id: str | None = None
    parent_id: str | None = None  # the previous turn
    derived_from_id: str | None = None  # edits and explicit regenerations
    metadata: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    context_hash: str | None = None  # filled by the store: regenerations of one prompt share it
    created_at: datetime | None = None  # filled by the store


@dataclass(frozen=True, slots=True)
class Answer:
    """What dataset builders need of an interaction: the chat, the completion, the prompt group."""

    id: str
    messages: list[Message]
    completion: str
    context_hash: str


@dataclass
class Feedback:
    """One judgement event on one or more interactions.

    ``interaction_id`` is the subject for single-target kinds (rating, critique, span, ...).
    Preferences and rankings name their interactions in ``targets`` instead:
    ``[{"interaction_id": ..., "role": "chosen"|"rejected"|"candidate", "position": int|None}]``.
    Typed fields (``score``, ``label``, ``text``) summarise the row; everything else goes to ``payload``.
    """

    kind: FeedbackKind
    interaction_id: str | None = None
    score: float | None = None
    label: str | None = None
    text: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)
    source: Source = Source.HUMAN
    author: str | None = None
    id: str = field(default_factory=new_id)
    idempotency_key: str | None = None
    status: str = "active"  # active | superseded | retracted
    created_at: datetime | None = None  # filled by the store


@dataclass(frozen=True)
class Example:
    """A task instance: a chat prompt and the ground truth a verifier checks against."""

    id: str
    task: str
    messages: tuple[Message, ...]
    answer: str
    difficulty: int = 1


@dataclass(frozen=True)
class Verdict:
    """What a verifier says about one completion."""

    correct: bool
    expected: str
    extracted: str | None  # the answer the verifier read from the completion, None if none was found
    score: float = 0.0  # 1.0 when correct; partial credit where the task defines it
    where: tuple[int, int] | None = None  # (start, end) of the first wrong characters, where the task says


@dataclass(frozen=True)
class PreferencePair:
    """A preference row in TRL's explicit-prompt convention (``prompt`` is a chat, the answers are text)."""

    prompt: tuple[Message, ...]
    chosen: str
    rejected: str
    source_ids: tuple[str, ...] = ()


class FinishReason(StrEnum):
    """Why a completion ended (OpenAI's ``finish_reason`` values)."""

    STOP = "stop"  # the model sampled EOS, or a stop string / stop token matched
    LENGTH = "length"  # cut off at ``max_new_tokens``: no EOS was sampled, none may be appended
    ABORTED = "aborted"  # the client went away mid-stream; what was generated so far is kept
    TOOL_CALLS = "tool_calls"  # an upstream's answer that calls tools
    CONTENT_FILTER = "content_filter"  # an upstream withheld the rest


@dataclass(frozen=True)
class SamplingParams:
    """How a completion was (or is to be) sampled. ``temperature=0`` is greedy."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 32
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: int = 0  # top alternatives to return per token (OpenAI's top_logprobs); 0: only the sampled one
    # (token id, bias) pairs added to the logits before temperature (OpenAI's logit_bias); the
    # recorded log-probs are those of the biased distribution, which is what was sampled from
    logit_bias: tuple[tuple[int, float], ...] = ()

    def __post_init__(self):
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.max_new_tokens < 1:
            raise ValueError(
                f"need temperature >= 0, 0 < top_p <= 1 and max_new_tokens >= 1, "
                f"got {self.temperature}, {self.top_p}, {self.max_new_tokens}"
            )
        if self.logprobs < 0:
            raise ValueError(f"need logprobs >= 0, got {self.logprobs}")

    def to_dict(self) -> dict:
        """JSON-ready: what a served row stores as its sampling parameters."""
        return {"temperature": self.temperature, "top_p": self.top_p, "max_new_tokens": self.max_new_tokens,
                "stop": list(self.stop), "seed": self.seed, "logprobs": self.logprobs,
                "logit_bias": [list(p) for p in self.logit_bias]}

    @classmethod
    def from_dict(cls, d: dict) -> SamplingParams:
        return cls(**{**d, "stop": tuple(d.get("stop") or ()),
                      "logit_bias": tuple((int(t), float(b)) for t, b in d.get("logit_bias") or ())})


@dataclass
class Rollout:
    """One sampled completion in context, as the generator produced it: the record every loop trains on.

    The server logs the same record for each served answer, so served traffic and simulated rollouts
    train alike. Token rules (``../shared/ACCEPTANCE.md``, "Tokens are stored as sampled"):
    - ``completion_ids`` are the exact sampled ids, the EOS or stop token included, even when
      ``completion`` (the decoded text) drops the stop string; never re-tokenize ``completion``.
    - ``logprobs[i]`` is the log-prob of ``completion_ids[i]`` under the distribution it was sampled
      from (after temperature and top-p), so importance ratios against it are exact.
    - ``finish_reason`` is ``length`` when cut off, and then no EOS is appended.
    - ``token_ids_exact`` is False for rows from an upstream that returned no token ids (text only);
      the online and multi-turn losses refuse or re-score those, and say which.
    """

    messages: list[Message]  # the prompt, OpenAI chat format
    prompt_ids: list[int]  # the chat template's tokens, generation prompt included
    completion_ids: list[int]
    logprobs: list[float]  # (len(completion_ids),)
    completion: str  # decoded text, special tokens and stop strings dropped
    finish_reason: FinishReason
    model: str  # the served name / model id
    version: str | None = None  # the adapter or weights version that produced it (``name@vN``)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    rewards: dict[str, float | None] = field(default_factory=dict)
    top_logprobs: list[dict[int, float]] | None = None  # per token: alternative id -> log-prob
    token_ids_exact: bool = True
    group: int = 0  # index of the prompt in the generate call; n rollouts share it
    id: str = field(default_factory=new_id)

    def __post_init__(self):
        if len(self.logprobs) != len(self.completion_ids):
            raise ValueError(
                f"a rollout needs one log-prob per completion token: {len(self.logprobs)} for "
                f"{len(self.completion_ids)} tokens"
            )
