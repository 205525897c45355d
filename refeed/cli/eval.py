"""``refeed eval``: held-out measures on their own, a command group (later: ``eval rm``, ``friction``, ``rules``)."""

from __future__ import annotations

import json

import click

from refeed.cli import main
from refeed.cli._common import console, print_rows, stage_progress


def _task(name: str, levels: str, seed: int = 0):
    """A built-in task at ``levels`` ("1,2"; empty: the task's default levels), or one clear usage error."""
    from refeed.pipelines.pretrain import TaskConfig

    try:
        lv = tuple(int(x) for x in levels.split(",")) if levels else ()
    except ValueError:
        raise click.UsageError(f"--levels must be comma-separated integers, got '{levels}'") from None
    try:
        return TaskConfig(name=name, levels=lv, seed=seed).build()
    except ValueError as e:
        raise click.UsageError(str(e)) from None


def _model(path: str):
    """(model, tokenizer) from a directory or hub id, or one clear usage error."""
    from refeed.models import load
    from refeed.pipelines.quiet import quiet_third_party

    try:
        with quiet_third_party():
            return load(path)
    except (OSError, ValueError) as e:
        raise click.UsageError(f"could not load model '{path}': {e}") from None


def _held_out(fn):
    """The options every ``eval`` command shares: MODEL, the task, its levels, the split and how many prompts."""
    for option in reversed([
        click.argument("model_path", metavar="MODEL"),
        click.option("--task", "task_name", default="arithmetic", show_default=True, help="A built-in task."),
        click.option("--levels", default="", help="Difficulty levels, comma-separated (default: the task's)."),
        click.option("--split", type=click.Choice(["test", "dev"]), default="test", show_default=True),
        click.option("--prompts", type=int, default=0, help="The first N prompts of the split (0: all)."),
    ]):
        fn = option(fn)
    return fn


@main.group(name="eval")
def eval_group() -> None:
    """Measure a model held out: `refeed eval tasks MODEL --task arithmetic`."""


@eval_group.command()
@_held_out
@click.option("--seed", type=int, default=0, show_default=True, help="The task's split seed.")
@click.option("--max-new-tokens", type=int, default=16, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object on stdout.")
def tasks(model_path: str, task_name: str, levels: str, split: str, prompts: int, seed: int, max_new_tokens: int,
          as_json: bool) -> None:
    """Greedy accuracy of MODEL (a directory or hub id) on a built-in task's split, by difficulty, with n.

    The harness `refeed train` runs before and after training.

    Example:
        refeed eval tasks runs/dpo-20260101-120000/model --task arithmetic --levels 1,2
    """
    from refeed.eval.harness import evaluate
    from refeed.pipelines.demo import Stage

    task = _task(task_name, levels, seed)
    model, tok = _model(model_path)

    examples = task.examples(split)[: prompts or None]
    with stage_progress() as report:
        res = evaluate(model, tok, task, examples=examples, max_new_tokens=max_new_tokens,
                       tick=lambda d, t: report(Stage("eval", d, t)))
    out = {"model": model_path, "task": task.name, "split": split, "accuracy": res.accuracy, "n": res.n,
           "by_difficulty": {str(d): {"accuracy": a, "n": res.n_by_difficulty[d]} for d, a in res.by_difficulty.items()}}
    if as_json:
        click.echo(json.dumps(out))
        return
    rows = [("", "n", "accuracy"), ("all", str(res.n), f"{res.accuracy:.3f}")]
    rows += [(f"level {d}", str(res.n_by_difficulty[d]), f"{a:.3f}") for d, a in res.by_difficulty.items()]
    print_rows(f"{task.name} {split} accuracy", rows)
    console.print(f"model: {model_path}")


@eval_group.command(name="friction")
@_held_out
@click.option("--turns", type=int, default=10, show_default=True, help="Answers per prompt, feedback between.")
@click.option("--source", type=click.Choice(["critique", "binary", "try_again"]), default="critique",
              show_default=True, help="The feedback between turns (the oracle's critique, or uninformative).")
@click.option("--temperature", type=float, default=0.0, show_default=True, help="Every turn's temperature.")
@click.option("--progressive", is_flag=True, help="The paper's schedule instead: min(0.15 t, 1.5).")
@click.option("--reject", is_flag=True, help="Feedback lists the answers tried and asks for another.")
@click.option("--max-new-tokens", type=int, default=16, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="The sampling seed.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object on stdout.")
def friction_cmd(model_path: str, task_name: str, levels: str, split: str, prompts: int, turns: int, source: str,
                 temperature: float, progressive: bool, reject: bool, max_new_tokens: int, seed: int,
                 as_json: bool) -> None:
    """The Feedback Friction protocol (METHODS.md section 12) for MODEL on a built-in task.

    Cumulative accuracy per turn with feedback after every wrong answer, the any-correct target of as many
    answers without feedback, friction (target minus final accuracy) and uptake (final accuracy with the
    feedback minus with a bare "try again"), with paired 95% intervals.

    Example:
        refeed eval friction runs/base-1a2b3c4d5e/model --task sort --turns 5 --temperature 0.7
    """
    from refeed.eval.friction import friction
    from refeed.models.hf_generator import TransformersGenerator

    if turns < 1:
        raise click.UsageError(f"--turns must be >= 1, got {turns}")
    task = _task(task_name, levels)
    examples = task.examples(split)[: prompts or None]
    model, tok = _model(model_path)
    res = friction(TransformersGenerator(model, tok), tok, task, examples, turns=turns, source=source,
                   temperature=temperature, progressive=progressive, reject=reject,
                   max_new_tokens=max_new_tokens, seed=seed)
    res["model"] = model_path
    if as_json:
        click.echo(json.dumps(res))
        return
    ci = lambda d: f"{d['value']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]"  # noqa: E731
    rows = [("turn", f"with {source}", "with try again")]
    rows += [(str(t + 1), f"{a:.3f}", f"{b:.3f}") for t, (a, b) in
             enumerate(zip(res["cumulative_accuracy"], res["cumulative_accuracy_try_again"], strict=True))]
    print_rows(f"{task.name} {split}: cumulative accuracy, n={res['n']}", rows)
    console.print(f"any-correct target: {res['target']:.3f}   friction: {ci(res['friction'])}   "
                  f"uptake over try again: {ci(res['uptake'])}")
    if res["ended"]["context"]:
        console.print(f"{res['ended']['context']} episodes ran out of context and count as unsolved after it")
