"""``refeed demo`` and ``refeed pretrain``."""

from __future__ import annotations

import json

import click
from rich.table import Table

from refeed.cli import main
from refeed.cli._common import console, load_config, model_option, stage_progress, with_model


@main.command()
@click.argument("overrides", nargs=-1)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML file with DemoConfig fields.")
@click.option("--json", "as_json", is_flag=True, help="Print the final metrics as one JSON object on stdout.")
@click.option("--seed", type=int, default=None, help="Shortcut for seed=N (sampling and training).")
@model_option()
def demo(overrides: tuple[str, ...], config_path: str | None, as_json: bool, seed: int | None,
         model_path: str | None) -> None:
    """Feedback -> DPO -> a better model, end to end on the built-in tiny model.

    Pretrains (or reuses) a tiny base model, samples answers, lets a simulated user who knows the
    answers give feedback, trains with DPO, and compares held-out accuracy before and after.
    OVERRIDES are dotted keys, e.g. train.lr=1e-4 objective.beta=0.2 sampling.k=8.

    \b
    Example:
        refeed demo --json
        refeed demo --model /path/to/your/model
    """
    from refeed.pipelines.demo import DemoConfig, run_demo

    if seed is not None:
        overrides = (*overrides, f"seed={seed}")
    overrides = with_model(overrides, model_path, "model", deprecated="model")
    cfg = load_config(DemoConfig, config_path, overrides)
    with stage_progress(enabled=True) as report:
        try:
            summary = run_demo(cfg, report)
        except (ValueError, FileNotFoundError) as e:  # bad input: exit code 2 with the message
            raise click.UsageError(str(e)) from None
        except RuntimeError as e:  # the run could not reach its goal (e.g. too little feedback)
            raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps(summary))
        return
    table = Table(title="refeed demo: held-out accuracy")
    for col in ("", "before", "after", "gain"):
        table.add_column(col, justify="right")
    table.add_row("all", f"{summary['accuracy_before']:.3f}", f"{summary['accuracy_after']:.3f}",
                  f"{summary['accuracy_gain']:+.3f}")
    for d, b in summary["accuracy_before_by_difficulty"].items():
        a = summary["accuracy_after_by_difficulty"][d]
        table.add_row(f"level {d}", f"{b:.3f}", f"{a:.3f}", f"{a - b:+.3f}")
    console.print(table)
    if summary.get("rollouts_logged") is not None:  # the online path (objective.name=grpo ...)
        console.print(f"{summary['rollouts_logged']} rollouts scored by the verifier and logged, "
                      f"{summary['train_steps']} {summary['objective']} steps, {summary['seconds']:.0f} s in all")
    else:
        console.print(f"{summary['pairs']} preference pairs from {summary['feedback']} feedback records, "
                      f"{summary['train_steps']} DPO steps, {summary['seconds']:.0f} s in all")
    console.print(f"report: {summary['report']}")


@main.command()
@click.argument("overrides", nargs=-1)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML file with PretrainConfig fields.")
def pretrain(overrides: tuple[str, ...], config_path: str | None) -> None:
    """Train a built-in base model by SFT until it is imperfect on purpose; cached on disk.

    Stops when DEV accuracy reaches target_accuracy, so there is room to improve from feedback.
    preset=small builds the 3.5M-parameter base (1,024 positions) and mid-trains it with the
    feedback prior (dials prior.*). Prints the model directory, which loads with from_pretrained.

    \b
    Example:
        refeed pretrain task.name=reverse target_accuracy=0.4
        refeed pretrain preset=small task.name=sort
    """
    from refeed.pipelines.pretrain import PretrainConfig
    from refeed.pipelines.pretrain import pretrain as run

    cfg = load_config(PretrainConfig, config_path, overrides)
    with stage_progress() as report:
        from refeed.pipelines.demo import Stage

        try:
            res = run(cfg, on_step=lambda s, t, r: report(Stage("pretrain", s, t, r)))
        except ValueError as e:
            raise click.UsageError(str(e)) from None
    state = "reused" if res.cached else f"trained in {res.seconds:.0f} s, {res.steps} steps"
    console.print(f"base model ({state}), dev accuracy {res.dev_accuracy:.3f}")
    click.echo(str(res.model_dir))
