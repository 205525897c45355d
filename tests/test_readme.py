"""Every command in README.md's code blocks, read at test time (as sqlite-utils tests its docs).

Each ```bash line and each ```python block falls under one rule of ``RULES`` / ``PYTHON_RULES``; a command no
rule names fails the test, so a command added to the README gets a decision here. What each mode does:

- ``run``: the command for real, through the click app, in one temporary directory shared by the whole README
  (the store is ``feedback.db`` there, as in the README); ``a|b|c`` in a word runs each alternative.
- ``config``: the command's own parsing and config loading run; the training step it would start (minutes on
  2 cores) is replaced by a check of what it was given: the task and objective build, a ``--data`` file has
  the objective's columns, a model directory exists.
- ``parse``: the command line is parsed by the click app (options, types, choices), not run.
- ``skip``: not run, for the reason given.

The list of what ran how is printed (``pytest -s``) and is the test's ``README_COMMANDS`` report.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from refeed.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# (regex on the command line, mode, reason) - first match wins.
RULES = [
    (r"^make ", "skip", "builds a virtualenv and installs packages, or runs the whole suite / linters"),
    (r"^\.venv/bin/python -m pytest", "skip", "the test suite itself"),
    (r"^((\.venv/bin/)?python3? |bash )bench/", "skip", "a benchmark: minutes, and its figures are the README's"),
    (r"^(\.venv/bin/)?pip ", "skip", "installs packages"),
    (r"^accelerate launch", "skip", "starts several processes through accelerate"),
    (r"^refeed (demo|train|pretrain)\b", "config", "trains for minutes on 2 cores"),
    (r"^refeed serve\b", "parse", "a server runs until stopped; tests/api serves the same app for real"),
    (r"^refeed (store|build|keys)\b", "run", ""),
    (r"^refeed ", "parse", "no rule says how to run it offline in seconds: its command line is parsed"),
]
# Placeholders the README uses for things a reader supplies; replaced before a command runs.
PLACEHOLDERS = ("runs/base-*/model", "/path/to/your/model", "/path/to/model")  # -> a model directory
# (regex on a python block, mode, reason)
PYTHON_RULES = [
    (r"<\w+>", "skip", "names a run directory that exists only after a training run (<time>, <id>); compiled "
                       "and its imports executed"),
    (r"client\.chat\.completions", "skip", "needs a running `refeed serve` and an OpenAI client; "
                                          "tests/api/test_openai_client.py makes the same calls"),
    (r"train_online\(model", "skip", "a sketch with the reader's model, rows and reward; compiled and its imports "
                                   "executed; tests/train/test_online.py runs the loop"),
    (r".", "run", ""),
]
PYTHON_SUBSTITUTIONS = {'device="cuda"': 'device="cpu"'}  # the CPU test machine has no GPU

README_COMMANDS: list[tuple[str, str, str]] = []  # (command, mode, reason): what this test did


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block."""
    return [(m[1], m[2]) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)]


def bash_commands(body: str) -> list[str]:
    """One command per line: comments cut, continuations joined."""
    out, pending = [], ""
    for line in body.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = (pending + line).strip(), ""
        if line:
            out.append(line)
    return out


def expand(command: str) -> list[list[str]]:
    """The argv of each alternative: a word ``a|b|c`` (no spaces) stands for three commands."""
    words = shlex.split(command)
    options = [w.split("|") if "|" in w else [w] for w in words]
    return [list(c) for c in itertools.product(*options)]


def rule(command: str, rules) -> tuple[str, str]:
    for pattern, mode, reason in rules:
        if re.search(pattern, command):
            return mode, reason
    pytest.fail(f"README command {command!r} matches no rule in tests/test_readme.py: add one (run, config, parse "
                f"or skip, with the reason)")


def _fill(text: str, model_dir: Path) -> str:
    for placeholder in PLACEHOLDERS:
        text = text.replace(placeholder, str(model_dir))
    return text


class Checked(Exception):  # noqa: N818 - not an error: the command reached its training step
    """Raised in place of the training step by ``config`` mode; never caught by the CLI."""


def _check_model(path: str) -> None:
    if path and (path.startswith(("/", ".")) or Path(path).exists()) and not (Path(path) / "config.json").is_file():
        raise AssertionError(f"model directory {path!r} does not exist")


def _check_demo(cfg, *_a, **_k):
    from refeed.objectives import build

    cfg.pretrain.task.build()
    params = dict(cfg.objective)
    build(params.pop("name", "dpo"), params)
    _check_model(cfg.model)
    raise Checked


def _check_train(cfg, *_a, **_k):
    from refeed.batch.encode import check_columns
    from refeed.objectives import build
    from refeed.pipelines.train_job import load_rows

    params = dict(cfg.objective)
    objective = build(params.pop("name", "dpo"), params)
    cfg.pretrain.task.build()
    if cfg.data.path:
        rows = load_rows(cfg.data.path)
        check_columns(objective, set(rows[0]) if rows else set())
    _check_model(cfg.model.path)
    raise Checked


def _check_pretrain(cfg, *_a, **_k):
    cfg.task.build()
    raise Checked


def _import_file(argv: list[str], cwd: Path) -> None:
    """`refeed store import FILE --format F`: FILE written in format F first (the README names one file for all)."""
    path, fmt = cwd / argv[3], argv[argv.index("--format") + 1]
    q, a = {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}
    content = {
        "refeed": json.dumps({"type": "interaction", "messages": [q], "completion": "4, I think"}) + "\n",
        "trl": json.dumps({"chosen": [q, a], "rejected": [q, {"role": "assistant", "content": "5"}]}) + "\n",
        "openai-chat": json.dumps({"messages": [q, a]}) + "\n",
        "qa-feedback": json.dumps([{
            "question": "Who wrote Hamlet?", "passages": [], "gold": ["Shakespeare"],
            **{f"prediction {k}": t for k, t in enumerate(["Shakespeare.", "Marlowe.", "Bacon, maybe.", "Unknown."], 1)},
            "feedback": {"errors": [{"start": 0, "end": 8, "error type": "unverifiable", "explanation": ""}],
                         "missing-info": [], "corrected-prediction": "William Shakespeare."},
            "preference": [1, 1, 1, 1, 1, 0]}]),
    }[fmt]
    path.write_text(content)


def _every_kind(cwd: Path) -> None:
    """One feedback of each kind the README's Capture block does not give, so each `refeed build` kind has rows."""
    from refeed.store import Store

    store = Store(f"sqlite:///{cwd / 'feedback.db'}")
    msgs = [{"role": "user", "content": "3+3?"}]
    a, b, c = (store.log(msgs, t) for t in ("6", "7", "six"))
    store.feedback(None, "ranking", ranking=[a, c, b])
    store.feedback(b, "followup", text="no, that's wrong", label="negative")
    store.feedback(a, "signal", signal="copy", propensity=0.5, source="implicit")
    store.feedback(None, "principle", text="Digits only.", applies_when="arithmetic")
    store.close()


@pytest.mark.slow
def test_readme_commands(tmp_path, monkeypatch, tiny_model_dir, capsys):
    import refeed.pipelines.demo
    import refeed.pipelines.pretrain
    import refeed.pipelines.train_job

    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").symlink_to(ROOT / "recipes")
    monkeypatch.setattr(refeed.pipelines.demo, "run_demo", _check_demo)
    monkeypatch.setattr(refeed.pipelines.train_job, "run_train", _check_train)
    monkeypatch.setattr(refeed.pipelines.pretrain, "pretrain", _check_pretrain)
    README_COMMANDS.clear()
    seeded = False
    for lang, body in blocks(README.read_text(encoding="utf-8")):
        if lang == "python":
            _python_block(body, tiny_model_dir)
            continue
        if lang not in ("bash", "sh"):
            continue
        for command in bash_commands(body):
            mode, reason = rule(command, RULES)
            if mode == "run" and not seeded:
                _every_kind(tmp_path)
                seeded = True
            for raw in expand(command):
                argv = [_fill(w, tiny_model_dir) for w in raw]
                README_COMMANDS.append((" ".join(raw), mode, reason))
                if mode in ("run", "config", "parse"):
                    _cli(argv, mode, tmp_path)
    with capsys.disabled():
        print("\nREADME commands:")
        for command, mode, reason in README_COMMANDS:
            print(f"  {mode:<6} {command}" + (f"   ({reason})" if reason else ""))
    assert any(m == "run" for _, m, _ in README_COMMANDS) and any(m == "config" for _, m, _ in README_COMMANDS)


def _cli(argv: list[str], mode: str, cwd: Path) -> None:
    command = " ".join(argv)
    if argv[0] != "refeed":
        raise AssertionError(f"{command}: only `refeed` commands can run here; add a skip rule")
    args = argv[1:]
    if mode == "parse":
        _parse(main, "refeed", args)
        return
    if args[:2] == ["store", "import"]:
        _import_file(argv, cwd)
    res = CliRunner().invoke(main, args)
    if mode == "config":
        assert isinstance(res.exception, Checked), f"{command}: exit {res.exit_code}\n{res.output}{res.exception!r}"
    else:
        assert res.exit_code == 0, f"{command}: exit {res.exit_code}\n{res.output}"


def _parse(cmd, name: str, args: list[str], parent=None) -> None:
    """Parse ``args`` the way click would before running ``cmd``, down through sub-command groups."""
    import click

    if isinstance(cmd, click.Group):  # README lines give no group options: the first word is the sub-command
        ctx = click.Context(cmd, info_name=name, parent=parent)
        sub = cmd.get_command(ctx, args[0])
        assert sub is not None, f"`{name} {args[0]}`: no such command"
        _parse(sub, args[0], args[1:], ctx)
        return
    cmd.make_context(name, list(args), parent=parent)


def _python_block(body: str, model_dir: Path) -> None:
    mode, reason = rule(body, PYTHON_RULES)
    code = _fill(body, model_dir)
    for old, new in PYTHON_SUBSTITUTIONS.items():
        code = code.replace(old, new)
    first = body.strip().splitlines()[0]
    README_COMMANDS.append((f"python: {first} ...", mode, reason))
    compiled = compile(code, "README.md", "exec")
    if mode == "run":
        exec(compiled, {"__name__": "readme"})  # noqa: S102 - the README's own code
    else:
        imports = "\n".join(line for line in code.splitlines() if re.match(r"\s*(from \S+ )?import ", line))
        exec(compile(imports, "README.md", "exec"), {"__name__": "readme"})  # noqa: S102
