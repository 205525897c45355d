"""An AI judge over any OpenAI-compatible endpoint, as an (async) reward function.

    fn = judge(JudgeConfig(base_url="http://127.0.0.1:8000/v1", model="judge", rubric="Correct and concise."))
    await fn(prompts=prompts, completions=completions)          # one score in [0, 1] per completion

Two modes (``mode``):
- ``pointwise``: one request per completion. The judge reads the criterion (a ``rubric``, or a
  ``principle`` the answer should satisfy), the conversation and the answer, and ends its reply with
  ``Score: N`` on the ``scale`` (1-10 by default, or 0-1). The reward is (N - lo) / (hi - lo), in [0, 1].
- ``group``: one request per prompt, with all of its K answers numbered (in an order shuffled
  deterministically from the answers, against position bias, and mapped back). The judge ends with
  ``Ranking: 3 > 1 > 2``, a permutation of 1..K; the answer at rank r (0 = best) gets 1 - r / (K - 1).
  Completions are grouped by equal prompts, so the online loop's one-call-per-group fits it.

A reply with no parsable score (no ``Score:`` line, a number off the scale, a ranking that is not a
permutation) gives None for those completions ("does not apply": it counts 0 in the weighted sum)
and is counted in ``fn.stats["unparsable"]``; with ``on_unparsable="raise"`` it is an error that
quotes the reply. Requests go through ``refeed.models.openai_generator.OpenAIClient``: cached by
request (so re-judging the same answer costs nothing; ``cache`` names a JSONL file to keep the cache
across runs), retried with backoff on 429/5xx/timeouts, at most ``max_concurrency`` in flight.

**Untested for quality**: the plumbing (request, parsing, cache, retry, errors) is tested against
``refeed serve`` and a scripted endpoint; no judge model was run here, and no agreement figure is
claimed for any.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from refeed.models.openai_generator import OpenAIClient, api_key_from_env
from refeed.rewards.base import Reward, render_chat, text_of

SYSTEM = "You are a careful, impartial judge of answers written by an AI assistant."
POINTWISE = """{criterion}

[Conversation]
{prompt}

[Answer]
{answer}

Rate the answer on a scale from {lo} to {hi} ({hi} is best). Explain briefly, then end your reply with a line of the form
Score: <number>"""
GROUP = """{criterion}

[Conversation]
{prompt}

{answers}

Rank all {k} answers from best to worst. Explain briefly, then end your reply with a line of the form
Ranking: <best number> > <next> > ... > <worst number>"""

_SCORE = re.compile(r"score\s*[:=]\s*\**\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_BARE = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*\.?\s*")
_RANKING = re.compile(r"ranking\s*[:=]\s*(.+)", re.IGNORECASE)


class UnparsableReply(ValueError):
    """The judge's reply held no score (``on_unparsable="raise"``)."""


@dataclass(frozen=True)
class JudgeConfig:
    base_url: str
    model: str
    rubric: str | None = None
    principle: str | None = None
    mode: str = "pointwise"  # pointwise | group
    scale: tuple[float, float] = (1, 10)
    api_key_env: str | None = None  # the environment variable holding the key (keys never live in recipes)
    temperature: float = 0.0
    max_tokens: int = 512
    on_unparsable: str = "none"  # none: None and count it | raise
    cache: bool | str = True  # True: in memory; a path: a JSONL file kept across runs; False: off
    max_concurrency: int = 8
    max_retries: int = 4
    backoff: float = 0.5
    timeout: float = 60.0
    params: dict[str, Any] = field(default_factory=dict)  # extra request fields (e.g. logit_bias, seed)
    template: str | None = None  # the user message; fields {criterion} {prompt} and {answer} {lo} {hi} or {answers} {k}
    system: str = SYSTEM  # the system message ("" for none)

    def __post_init__(self) -> None:
        if (self.rubric is None) == (self.principle is None):
            raise ValueError("judge: give exactly one of rubric (what a good answer is) or principle (a rule it "
                             "should follow)")
        if self.mode not in ("pointwise", "group"):
            raise ValueError(f"judge: mode must be pointwise or group, got '{self.mode}'")
        if self.on_unparsable not in ("none", "raise"):
            raise ValueError(f"judge: on_unparsable must be none or raise, got '{self.on_unparsable}'")
        lo, hi = self.scale
        if not lo < hi:
            raise ValueError(f"judge: scale must be (low, high) with low < high, got {self.scale}")

    @property
    def criterion(self) -> str:
        if self.rubric is not None:
            return f"Judge the answer by this rubric:\n{self.rubric}"
        return f"Judge how well the answer follows this principle:\n{self.principle}"


def parse_score(reply: str, scale: tuple[float, float]) -> float | None:
    """The last ``Score: N`` in ``reply`` (or a reply that is only a number), or None if none is on the scale."""
    found = _SCORE.findall(reply or "")
    value = found[-1] if found else (m.group(1) if (m := _BARE.fullmatch(reply or "")) else None)
    if value is None or not scale[0] <= float(value) <= scale[1]:
        return None
    return float(value)


def parse_ranking(reply: str, k: int) -> list[int] | None:
    """The last ``Ranking:`` line as 0-based answer indices, best first, or None unless a permutation of K."""
    lines = _RANKING.findall(reply or "")
    if not lines:
        return None
    order = [int(x) - 1 for x in re.findall(r"\d+", lines[-1])]
    return order if sorted(order) == list(range(k)) else None


def rank_scores(order: Sequence[int]) -> list[float]:
    """Answer index -> 1 - rank / (K - 1): the best gets 1, the worst 0."""
    k = len(order)
    out = [0.0] * k
    for rank, i in enumerate(order):
        out[i] = 1.0 - rank / (k - 1)
    return out


class Judge:
    """Builds the requests, sends them through one ``OpenAIClient``, parses the replies."""

    def __init__(self, cfg: JudgeConfig):
        self.cfg = cfg
        self.client = OpenAIClient(cfg.base_url, api_key_from_env(cfg.api_key_env), timeout=cfg.timeout,
                                   max_retries=cfg.max_retries, backoff=cfg.backoff,
                                   max_concurrency=cfg.max_concurrency, cache=cfg.cache)
        self.stats = self.client.stats
        self.stats.setdefault("unparsable", 0)

    def _body(self, content: str) -> dict:
        system = [{"role": "system", "content": self.cfg.system}] if self.cfg.system else []
        return {"model": self.cfg.model, "temperature": self.cfg.temperature, "max_tokens": self.cfg.max_tokens,
                "messages": [*system, {"role": "user", "content": content}], **self.cfg.params}

    def _unparsable(self, reply: str, what: str) -> None:
        self.stats["unparsable"] += 1
        if self.cfg.on_unparsable == "raise":
            raise UnparsableReply(f"judge '{self.cfg.model}' reply has no {what}: {reply[:300]!r}")

    async def pointwise(self, prompts: Sequence[Any], completions: Sequence[Any]) -> list[float | None]:
        lo, hi = self.cfg.scale
        template = self.cfg.template or POINTWISE
        bodies = [self._body(template.format(criterion=self.cfg.criterion, prompt=render_chat(p), answer=text_of(c),
                                             lo=_num(lo), hi=_num(hi)))
                  for p, c in zip(prompts, completions, strict=True)]
        out = []
        for resp in await self.client.chat_many(bodies):
            reply = _content(resp)
            s = parse_score(reply, self.cfg.scale)
            if s is None:
                self._unparsable(reply, f"score from {_num(lo)} to {_num(hi)} (expected a last line 'Score: N')")
            out.append(None if s is None else (s - lo) / (hi - lo))
        return out

    async def group(self, prompts: Sequence[Any], completions: Sequence[Any]) -> list[float | None]:
        groups: dict[str, list[int]] = {}
        for i, p in enumerate(prompts):
            groups.setdefault(json.dumps(p, sort_keys=True, default=str), []).append(i)
        jobs, bodies = [], []
        for members in groups.values():
            if len(members) < 2:
                continue  # one answer has no ranking: None
            texts = [text_of(completions[i]) for i in members]
            shown = list(range(len(members)))  # shown[j] = which member is presented as answer j + 1
            random.Random(hashlib.sha256("\x00".join(texts).encode()).hexdigest()).shuffle(shown)
            answers = "\n\n".join(f"[Answer {j + 1}]\n{texts[m]}" for j, m in enumerate(shown))
            content = (self.cfg.template or GROUP).format(criterion=self.cfg.criterion, answers=answers, k=len(members),
                                                          prompt=render_chat(prompts[members[0]]))
            bodies.append(self._body(content))
            jobs.append((members, shown))
        out: list[float | None] = [None] * len(prompts)
        for (members, shown), resp in zip(jobs, await self.client.chat_many(bodies), strict=True):
            reply = _content(resp)
            order = parse_ranking(reply, len(members))
            if order is None:
                self._unparsable(reply, f"ranking of answers 1..{len(members)} "
                                        f"(expected a last line 'Ranking: 2 > 1 > ...')")
                continue
            for j, s in enumerate(rank_scores(order)):
                out[members[shown[j]]] = s
        return out


def _content(resp: dict) -> str:
    choices = resp.get("choices") or [{}]
    return (choices[0].get("message") or {}).get("content") or ""


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def judge(cfg: JudgeConfig, name: str = "judge") -> Reward:
    """An async TRL-signature reward function over ``Judge(cfg)``; ``fn.stats`` counts requests, cache hits,
    retries and unparsable replies."""
    j = Judge(cfg)

    async def fn(prompts: Sequence[Any], completions: Sequence[Any], **columns) -> list[float | None]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        return await (j.group if cfg.mode == "group" else j.pointwise)(prompts, completions)

    fn.__name__ = fn.__qualname__ = name
    fn.judge, fn.stats = j, j.stats
    return fn
