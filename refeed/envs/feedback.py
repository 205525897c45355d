"""Feedback environments: a task's prompt, then feedback between the policy's answers, until it is right.

    env = FeedbackEnv(task, source="critique", max_turns=5)
    messages = env.reset(example)
    feedback, reward, done = env.step(answer_text)       # feedback: the user messages of the next turn

Sources of feedback between turns (``SOURCES``; a recipe names one as it names a reward function):

- ``try_again``: unary feedback, "That is not right. Try again." (UFO, METHODS.md section 11);
- ``binary``: "Your answer was incorrect." (Feedback Friction's binary mode, section 12);
- ``critique``: the task oracle's ground-truth critique, which names the error and never the answer
  (``refeed.tasks.oracle.critique``, Feedback Friction's generator in templated form).

A source is ``fn(task, example, answer, history) -> str``; one that returns nothing for a wrong answer is an
error, not an empty turn. The reward of a turn is the verifier's (1.0 right, 0.0 wrong); ``run`` rolls many
episodes at once through a ``Generator`` from their exact token ids (``refeed.envs.episode``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from refeed.envs.episode import Episode, add_answer, add_feedback, start
from refeed.tasks import oracle
from refeed.tasks.base import Task
from refeed.types import Example, Message, SamplingParams

Source = Callable[[Task, Example, str, Sequence[Message]], "str | None"]

SOURCES: dict[str, Source] = {
    "try_again": lambda task, ex, answer, history: oracle.TRY_AGAIN,
    "binary": lambda task, ex, answer, history: "Your answer was incorrect.",
    "critique": lambda task, ex, answer, history: oracle.critique(task, ex, answer),
}


def get_source(name: str) -> Source:
    if name not in SOURCES:
        raise ValueError(f"unknown feedback source '{name}'; sources: {', '.join(sorted(SOURCES))}")
    return SOURCES[name]


class FeedbackEnv:
    """One episode at a time on ``task``: ``reset(example)``, then ``step(answer)`` per answer."""

    def __init__(self, task: Task, source: str | Source = "critique", max_turns: int = 5):
        if max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns}")
        self.task, self.max_turns = task, max_turns
        self.source = get_source(source) if isinstance(source, str) else source
        self.example: Example | None = None
        self.history: list[Message] = []

    def reset(self, example: Example) -> list[Message]:
        self.example, self.history = example, list(example.messages)
        return list(self.history)

    def step(self, answer: str) -> tuple[list[Message], float, bool]:
        if self.example is None:
            raise RuntimeError("FeedbackEnv.step before reset")
        self.history.append({"role": "assistant", "content": answer})
        turn = sum(m["role"] == "assistant" for m in self.history)
        right = self.task.verify(self.example, answer).correct
        if right or turn >= self.max_turns:
            return [], float(right), True
        text = self.source(self.task, self.example, answer, list(self.history))
        if not text or not text.strip():
            raise ValueError(f"feedback source returned no feedback for a wrong answer at turn {turn} "
                             f"(example {self.example.id})")
        feedback = [{"role": "user", "content": text}]
        self.history += feedback
        return feedback, 0.0, False


@dataclasses.dataclass(frozen=True)
class Outcome:
    """An episode and why it ended: ``solved`` / ``turns`` (out of turns) / ``context`` (the next turn would
    not fit the model's context; the turns so far are kept)."""

    episode: Episode
    ended: str


def run(generator, tok, envs: Sequence[FeedbackEnv], examples: Sequence[Example], sampling: SamplingParams,
        context: int | None = None, temperatures: Sequence[float] | None = None) -> list[Outcome]:
    """One episode per (env, example), all turns batched through ``generator.generate_ids``.

    ``temperatures[t]`` (optional) is turn t's temperature, as the friction protocol's progressive schedule
    sets it; ``context`` (default: the generator's) stops an episode whose next prompt and answer would not fit."""
    if len(envs) != len(examples):
        raise ValueError(f"run: {len(envs)} environments for {len(examples)} examples")
    context = context if context is not None else getattr(generator, "context", None)
    eps = [start(tok, env.reset(ex)) for env, ex in zip(envs, examples, strict=True)]
    ended: list[str | None] = [None] * len(eps)
    for turn in range(max((e.max_turns for e in envs), default=0)):
        todo = [i for i, e in enumerate(ended) if e is None]
        for i in todo:
            if context is not None and len(eps[i].ids) + sampling.max_new_tokens > context:
                ended[i] = "context"
        todo = [i for i in todo if ended[i] is None]
        if not todo:
            break
        temp = temperatures[min(turn, len(temperatures) - 1)] if temperatures else sampling.temperature
        params = dataclasses.replace(sampling, temperature=temp,
                                     seed=None if sampling.seed is None else sampling.seed + turn)
        rollouts = generator.generate_ids([eps[i].ids for i in todo], [eps[i].messages for i in todo], params)
        for i, ro in zip(todo, rollouts, strict=True):
            feedback, reward, done = envs[i].step(ro.completion)
            eps[i] = add_answer(eps[i], ro, reward)
            if done:
                ended[i] = "solved" if reward > 0 else "turns"
            else:
                eps[i] = add_feedback(eps[i], tok, feedback)
    return [Outcome(ep, e or "turns") for ep, e in zip(eps, ended, strict=True)]
