"""Fuzzing a real server, on SQLite and on PostgreSQL, with every key role (issue 11, hardening 8).

- Schemathesis fuzzes every operation of the published OpenAPI spec once per key role (admin, ingest,
  feedback), the three runs at once: no 5xx, and no invalid payload accepted (negative data must get a
  4xx). It generates NUL characters (``--generation-allow-x00``) and out-of-range numbers.
- A hand-made hostile corpus goes to every POST route with every credential (each role, another
  project's admin, a bogus key, none), all at once: bodies nested 600 deep, ``1e999`` / ``NaN`` /
  ``Infinity`` / a 5000-digit integer in every number, NUL and a lone surrogate in every string,
  a text over the field limit. Every answer is a 4xx.

``hostile_requests`` and ``run_schemathesis`` are shared with ``bench/serve_faults.py``, which records
the counts in the README.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import backend_url, free_port, make_keys, start_server

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _start_schemathesis(port: int, key: str, examples: int, cwd: Path, phases: str | None) -> subprocess.Popen:
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert exe, "schemathesis is part of the dev extra"
    return subprocess.Popen(
        [exe, "run", f"http://127.0.0.1:{port}/openapi.json", "-H", f"Authorization: Bearer {key}",
         "--checks", "not_a_server_error,negative_data_rejection", "--mode", "all", "--max-examples",
         str(examples), "--seed", "1", "--request-timeout", "60", "--workers", "1",
         "--generation-allow-x00", "true", "--suppress-health-check", "all",
         *(["--phases", phases] if phases else [])],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd,
    )  # fmt: skip  (cwd: its cache stays out of the repo)


def run_schemathesis(port: int, keys: dict, cwd: Path, phases: str | None = None) -> dict[str, str]:
    """One schemathesis process per key role, all three at once (the concurrency: schemathesis's own
    ``--workers`` are threads, and Hypothesis's lambda-source parsing races under threads on Python 3.11,
    failing the tool, not the server). ``phases`` picks schemathesis phases (default: all). Returns each
    role's report; a failed run raises."""
    procs = {role: _start_schemathesis(port, keys[role], 25 if role == "admin" else 10, cwd, phases)
             for role in ("admin", "ingest", "feedback")}  # fmt: skip
    reports = {role: p.communicate(timeout=600)[0] for role, p in procs.items()}
    for role, report in reports.items():
        (cwd / f"{role}.txt").write_text(report)  # the whole report, for a failure
        assert procs[role].returncode == 0 and " passed" in report, (role, cwd / f"{role}.txt")
    return reports


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_openapi_fuzz_with_every_role_finds_no_server_error(backend, request, tmp_path_factory, tiny_model_dir):
    request.param = backend
    url = backend_url(request, tmp_path_factory)
    keys = make_keys(url)
    port = free_port()
    proc = start_server(tiny_model_dir, url, port)
    try:
        # The coverage phase tests the request validation, which is the same code on both backends; it runs
        # on SQLite. PostgreSQL gets the phases that write (fuzzing, stateful) to stay in the suite's
        # time budget; bench/serve_faults.py runs every phase on both.
        phases = None if backend == "sqlite" else "examples,fuzzing,stateful"
        run_schemathesis(port, keys, tmp_path_factory.mktemp("schemathesis"), phases)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_hostile_bodies_get_a_4xx_on_every_route_and_credential(any_server):
    tried, server_errors = asyncio.run(hostile_requests(any_server.base, credentials(any_server)))
    assert tried > 500 and server_errors == [], server_errors[:5]


def credentials(server) -> dict[str, str | None]:
    return {"admin": server.admin, "ingest": server.ingest, "feedback": server.feedback,
            "other_admin": server.other_admin, "bogus": "rf_000000000000.bogus", "none": None}  # fmt: skip


TEMPLATES = {
    "/v1/feedback": [
        {"kind": "rating", "interaction_id": "I", "score": 4, "scale": [1, 5], "reason_tags": ["t"]},
        {"kind": "preference", "interaction_id": "I", "rejected": "I", "strength": 0.5, "aspect": "a"},
        {"kind": "span", "interaction_id": "I", "start": 0, "end": 1, "category": "c", "severity": 1},
        {"kind": "followup", "interaction_id": "I", "text": "t", "label": "l", "followup_interaction_id": "I"},
        {"kind": "signal", "interaction_id": "I", "signal": "dwell", "value": 2.5, "propensity": 0.5},
        {"kind": "principle", "text": "t", "applies_when": "w", "tags": ["x"], "author": "a"},
    ],
    "/v1/feedback/batch": [{"items": [{"kind": "critique", "interaction_id": "I", "text": "t", "author": "a"}]}],
    "/v1/interactions": [{"messages": [{"role": "user", "content": "q"}], "completion": "a", "model": "m",
                          "params": {"temperature": 0.7}, "metadata": {"k": [1, "v"]}}],
    "/v1/chat/completions": [{"messages": [{"role": "user", "content": "q"}], "temperature": 0.5, "top_p": 0.9,
                              "max_tokens": 4, "model": "m"}],
    "/v1/keys": [{"role": "ingest"}],
}  # fmt: skip
NUMBERS = ("1e999", "-1e999", "NaN", "Infinity", "-Infinity", "1" * 5000)
STRINGS = ('"a\\u0000b"', '"\\ud800"')
LONG = '"' + "x" * 200_001 + '"'  # over the per-field text limit: once per template, with one key
DEEP = '{"junk": ' + "[" * 600 + "]" * 600 + "}"


def _mutations(template) -> list[str]:
    """Raw JSON bodies: the template with one leaf at a time replaced by each hostile number or string."""
    import json

    out = []

    def leaves(value, path):
        if isinstance(value, dict):
            for k, v in value.items():
                yield from leaves(v, (*path, k))
        elif isinstance(value, list):
            for n, v in enumerate(value):
                yield from leaves(v, (*path, n))
        else:
            yield path, value

    marker, long_done = "\x01HOSTILE\x01", False
    for path, leaf in leaves(template, ()):
        if isinstance(leaf, bool):
            continue
        bad = NUMBERS if isinstance(leaf, int | float) else STRINGS
        doc = json.loads(json.dumps(template))
        node = doc
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = marker
        text = json.dumps(doc)
        out += [text.replace(json.dumps(marker), b) for b in bad]
        if isinstance(leaf, str) and not long_done:
            long_done = True
            out.append(text.replace(json.dumps(marker), LONG))
    out.append(json.dumps(template)[:-1] + ", " + DEEP[1:])
    return out


async def hostile_requests(base: str, creds: dict, concurrency: int = 32) -> tuple[int, list]:
    """Send the hostile corpus to every POST route with every credential; (requests, [5xx answers])."""
    jobs = [(path, body, key) for path, templates in TEMPLATES.items() for t in templates
            for body in _mutations(t) for key in (creds.values() if len(body) < 100_000 else [creds["admin"]])]  # fmt: skip
    errors, gate = [], asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=httpx.Limits(max_connections=concurrency)) as c:

        async def one(path, body, key):
            headers = {"content-type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
            async with gate:
                r = await c.post(path, content=body.encode(), headers=headers)
            if r.status_code >= 500 or r.status_code < 400:
                errors.append((path, r.status_code, body[:200], r.text[:300]))

        await asyncio.gather(*(one(*job) for job in jobs))
    return len(jobs), errors
