"""The AI judge's plumbing against a real HTTP endpoint scripted in the test (a threading ``http.server`` that
answers OpenAI chat completions as told): pointwise scores parsed on 1-10 and 0-1 scales, group rankings turned
into scores and mapped back through the shuffled presentation order, unparsable replies (None and counted, or an
error quoting the reply), the request cache (a repeat makes no request; a JSONL cache survives a new judge),
retries on 503 / 429 (Retry-After) / timeouts, a 4xx that is not retried, and the concurrency limit.
The judge against ``refeed serve`` itself is in tests/models/test_openai_generator.py."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from refeed.models.openai_generator import EndpointError
from refeed.rewards import JudgeConfig, build_rewards, judge
from refeed.rewards.judges import UnparsableReply, parse_ranking, parse_score, rank_scores


class Endpoint:
    """``reply(body) -> (status, content_or_error, headers)`` decides each answer; every body is recorded."""

    def __init__(self, reply, delay: float = 0.0):
        self.reply, self.delay, self.bodies, self.in_flight, self.peak = reply, delay, [], 0, 0
        self.auth: list[str | None] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.bodies.append(body)
                    outer.auth.append(self.headers.get("Authorization"))
                    outer.in_flight += 1
                    outer.peak = max(outer.peak, outer.in_flight)
                try:
                    time.sleep(outer.delay)
                    status, content, headers = outer.reply(body)
                finally:
                    with outer.lock:
                        outer.in_flight -= 1
                if status == 200:
                    data = {"id": "x", "object": "chat.completion", "model": body["model"],
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                         "finish_reason": "stop"}]}
                else:
                    data = {"error": {"message": content}}
                raw = json.dumps(data).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that timed out and left: the write fails, as it would on a real server

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    made = []

    def make(reply, delay=0.0):
        made.append(Endpoint(reply, delay))
        return made[-1]

    yield make
    for e in made:
        e.close()


def ok(content):
    return lambda body: (200, content(body) if callable(content) else content, {})


def answer_of(body) -> str:
    return body["messages"][-1]["content"].split("[Answer]\n")[1].split("\n\nRate the answer")[0]


PROMPTS = [[{"role": "user", "content": "What is 2+3?"}]] * 3
ANSWERS = [[{"role": "assistant", "content": a}] for a in ("5", "five", "7")]


def run(fn, prompts=PROMPTS, completions=ANSWERS):
    return asyncio.run(fn(prompts=prompts, completions=completions))


def test_pointwise_scores_are_parsed_and_scaled(endpoint):
    scores = {"5": "Correct.\nScore: 10", "five": "Right but spelled out.\nscore = 7", "7": "Wrong. Score: 1"}
    e = endpoint(ok(lambda b: scores[answer_of(b)]))
    fn = judge(JudgeConfig(base_url=e.url, model="judge", rubric="Correct arithmetic."))
    assert run(fn) == [1.0, pytest.approx(6 / 9), 0.0]
    body = e.bodies[0]
    assert body["model"] == "judge" and body["temperature"] == 0.0 and body["messages"][0]["role"] == "system"
    assert "Correct arithmetic." in body["messages"][1]["content"] and "user: What is 2+3?" in body["messages"][1]["content"]
    assert fn.__name__ == "judge" and fn.stats["requests"] == 3
    e01 = endpoint(ok("0.25"))  # a bare number on a 0-1 scale, a principle instead of a rubric
    fn01 = judge(JudgeConfig(base_url=e01.url, model="j", principle="Never use words for numbers.", scale=(0, 1)))
    assert run(fn01) == [0.25] * 3 and "follows this principle" in e01.bodies[0]["messages"][1]["content"]


def test_parsers_closed_forms():
    assert parse_score("Score: 3\n...\nScore: 8", (1, 10)) == 8  # the last one counts
    assert parse_score("Score: 11", (1, 10)) is None and parse_score("great answer", (1, 10)) is None
    assert parse_ranking("Ranking: 3 > 1 > 2", 3) == [2, 0, 1]
    assert parse_ranking("Ranking: 3 > 1 > 3", 3) is None and parse_ranking("Ranking: 1 > 2", 3) is None
    assert rank_scores([2, 0, 1]) == [0.5, 0.0, 1.0]


def test_group_ranking_maps_ranks_back_through_the_shuffle(endpoint):
    def rank(body):  # the judge prefers "5", then "five", then "7", whatever order they are shown in
        text = body["messages"][-1]["content"]
        shown = {m.group(2): int(m.group(1)) for m in re.finditer(r"\[Answer (\d+)\]\n(\S+)", text)}
        return "Ranking: " + " > ".join(str(shown[a]) for a in ("5", "five", "7") if a in shown)

    e = endpoint(ok(rank))
    fn = judge(JudgeConfig(base_url=e.url, model="judge", rubric="Correct.", mode="group"))
    other = [[{"role": "user", "content": "What is 1+1?"}]] * 2
    out = run(fn, PROMPTS + other, ANSWERS + [[{"role": "assistant", "content": a}] for a in ("five", "5")])
    assert out == [1.0, 0.5, 0.0, 0.0, 1.0] and len(e.bodies) == 2  # one request per prompt group
    assert "Rank all 3 answers" in e.bodies[0]["messages"][-1]["content"]
    assert run(fn, PROMPTS[:1], ANSWERS[:1]) == [None]  # one answer has no ranking


def test_unparsable_replies_are_none_and_counted_or_raise(endpoint):
    e = endpoint(ok(lambda b: "Score: 9" if answer_of(b) == "5" else "I cannot judge this."))
    fn = judge(JudgeConfig(base_url=e.url, model="judge", rubric="Correct."))
    assert run(fn) == [pytest.approx(8 / 9), None, None] and fn.stats["unparsable"] == 2
    strict = judge(JudgeConfig(base_url=e.url, model="judge", rubric="Correct.", on_unparsable="raise", cache=False))
    with pytest.raises(UnparsableReply, match=r"judge 'judge' reply has no score from 1 to 10 .*'I cannot judge this.'"):
        run(strict)
    g = endpoint(ok("Ranking: 1 > 1 > 2"))
    group = judge(JudgeConfig(base_url=g.url, model="judge", rubric="Correct.", mode="group"))
    assert run(group) == [None, None, None] and group.stats["unparsable"] == 1


def test_a_repeated_request_comes_from_the_cache(endpoint, tmp_path):
    e = endpoint(ok("Score: 5"))
    cfg = JudgeConfig(base_url=e.url, model="judge", rubric="Correct.", cache=str(tmp_path / "cache.jsonl"))
    fn = judge(cfg)
    first = run(fn, PROMPTS, ANSWERS[:1] * 3)  # three identical requests: sent once
    assert len(e.bodies) == 1 and first == [pytest.approx(4 / 9)] * 3
    assert run(fn, PROMPTS, ANSWERS[:1] * 3) == first and len(e.bodies) == 1 and fn.stats["cache_hits"] == 5
    again = judge(cfg)  # a new judge (a resumed run) reads the file
    assert run(again, PROMPTS[:1], ANSWERS[:1]) == first[:1] and len(e.bodies) == 1
    run(judge(JudgeConfig(base_url=e.url, model="judge", rubric="Other.", cache=False)), PROMPTS[:1], ANSWERS[:1])
    assert len(e.bodies) == 2  # another rubric is another request


def test_retries_on_503_429_and_timeouts_with_backoff(endpoint):
    calls = {"n": 0}

    def flaky(body):
        calls["n"] += 1
        if calls["n"] == 1:
            return 503, "overloaded", {}
        if calls["n"] == 2:
            return 429, "slow down", {"Retry-After": "0.05"}
        return 200, "Score: 10", {}

    e = endpoint(flaky)
    fn = judge(JudgeConfig(base_url=e.url, model="judge", rubric="Correct.", backoff=0.01))
    t0 = time.perf_counter()
    assert run(fn, PROMPTS[:1], ANSWERS[:1]) == [1.0]
    assert calls["n"] == 3 and fn.stats["retries"] == 2 and time.perf_counter() - t0 >= 0.05  # Retry-After honoured
    slow = endpoint(ok("Score: 10"), delay=0.5)
    fn = judge(JudgeConfig(base_url=slow.url, model="judge", rubric="Correct.", timeout=0.1, max_retries=1, backoff=0.01))
    with pytest.raises(EndpointError, match="ReadTimeout after 2 attempts"):
        run(fn, PROMPTS[:1], ANSWERS[:1])
    assert len(slow.bodies) == 2


def test_client_errors_are_not_retried_and_exhausted_retries_name_the_status(endpoint):
    bad = endpoint(lambda body: (400, "model 'judge' does not exist", {}))
    fn = judge(JudgeConfig(base_url=bad.url, model="judge", rubric="Correct.", backoff=0.01))
    with pytest.raises(EndpointError, match="answered 400: .*model 'judge' does not exist") as e:
        run(fn, PROMPTS[:1], ANSWERS[:1])
    assert e.value.status == 400 and len(bad.bodies) == 1
    down = endpoint(lambda body: (502, "bad gateway", {}))
    fn = judge(JudgeConfig(base_url=down.url, model="judge", rubric="Correct.", backoff=0.001, max_retries=2))
    with pytest.raises(EndpointError, match="answered 502 after 3 attempts"):
        run(fn, PROMPTS[:1], ANSWERS[:1])


def test_at_most_max_concurrency_requests_are_in_flight(endpoint):
    e = endpoint(ok("Score: 3"), delay=0.05)
    fn = judge(JudgeConfig(base_url=e.url, model="judge", rubric="Correct.", max_concurrency=2))
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(8)]
    assert run(fn, prompts, [[{"role": "assistant", "content": "a"}]] * 8) == [pytest.approx(2 / 9)] * 8
    assert e.peak == 2 and len(e.bodies) == 8


def test_the_judge_spec_builds_an_async_reward(endpoint, monkeypatch):
    e = endpoint(ok("Score: 10"))
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    (fn,), (w,) = build_rewards([{"name": "judge", "base_url": e.url, "model": "judge", "principle": "Be right.",
                                  "api_key_env": "JUDGE_KEY", "scale": [1, 10], "weight": 0.5}])
    assert asyncio.iscoroutinefunction(fn) and w == 0.5 and run(fn, PROMPTS[:1], ANSWERS[:1]) == [1.0]
    assert e.auth == ["Bearer sk-test"]
    monkeypatch.delenv("JUDGE_KEY")
    with pytest.raises(ValueError, match=r"read from \$JUDGE_KEY, which is not set"):
        build_rewards([{"name": "judge", "base_url": e.url, "model": "judge", "rubric": "x", "api_key_env": "JUDGE_KEY"}])


def test_built_rewards_score_a_group_in_the_online_loop(endpoint):
    from refeed.train.online import score_group
    from refeed.types import FinishReason, Rollout

    e = endpoint(ok(lambda b: "Score: 10" if answer_of(b) == "5" else "Score: 1"))
    fns, weights = build_rewards([
        {"name": "verifier"},
        {"name": "judge", "base_url": e.url, "model": "judge", "rubric": "Correct.", "weight": 0.5},
        {"name": "overlong", "max_length": 4, "cache": 2},
    ], task="arithmetic")
    row = {"prompt": [{"role": "user", "content": "What is 2+3?"}], "answer": "5"}
    rollouts = [Rollout(messages=row["prompt"], prompt_ids=[1], completion_ids=[7] * n, logprobs=[-1.0] * n,
                        completion=text, finish_reason=FinishReason.STOP, model="m")
                for text, n in (("5", 2), ("7", 3), ("5", 4))]
    totals, signals = score_group(fns, weights, row, rollouts, 0)
    assert signals == {"verifier": [1.0, 0.0, 1.0], "judge": [1.0, 0.0, 1.0], "overlong": [0.0, -0.5, -1.0]}
    assert totals == [1.5, -0.5, 0.5]
