"""Multi-turn environments: feedback between a policy's answers, kept as the exact tokens served.

``episode`` holds an episode as token ids with a per-token "who produced it" mask; ``feedback`` has the
environments (a task plus a feedback source: "try again", binary, the oracle's critique) and ``run``, which
rolls episodes through any ``Generator``.
"""

from refeed.envs.episode import Episode, add_answer, add_feedback, start, verify
from refeed.envs.feedback import SOURCES, FeedbackEnv, Outcome, get_source, run

__all__ = ["SOURCES", "Episode", "FeedbackEnv", "Outcome", "add_answer", "add_feedback", "get_source", "run", "start",
           "verify"]
