"""``refeed train``."""

from __future__ import annotations

import json

import click

from refeed.cli import main
from refeed.cli._common import console, load_config, model_option, stage_progress, with_model


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--data", "data_path", type=click.Path(dir_okay=False), help="JSONL / Parquet rows in TRL columns.")
@click.option("--resume", type=click.Path(file_okay=False), help="Continue exactly from run_dir/checkpoint-<step>.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object on stdout.")
@model_option()
def train(recipe: str, overrides: tuple[str, ...], data_path: str | None, resume: str | None, as_json: bool,
          model_path: str | None) -> None:
    """Train with one objective from a YAML recipe (sections model, data, objective, train).

    OVERRIDES are dotted keys, e.g. objective.beta=0.2 train.max_steps=200. Without --data the rows
    come from the built-in task, judged by the simulated user. Runs under accelerate: launch it
    with `accelerate launch -m refeed train ...` for several processes or GPUs.

    \b
    Example:
        refeed train recipes/dpo.yaml objective.beta=0.5 train.max_steps=100
    """
    from refeed.config import ConfigError
    from refeed.pipelines.demo import Stage
    from refeed.pipelines.train_job import TrainJobConfig, run_train

    if data_path:
        overrides = (*overrides, f"data.path={data_path}")
    overrides = with_model(overrides, model_path, "model.path")  # the recipe's model.path= works as well
    cfg = load_config(TrainJobConfig, recipe, overrides)
    with stage_progress() as report:
        try:
            summary = run_train(cfg, resume=resume, progress=lambda s, t, r: report(Stage("train", s, t, r)))
        except (ConfigError, ValueError, FileNotFoundError) as e:
            raise click.UsageError(str(e)) from None
    from refeed.train.loop import is_main_process

    if not is_main_process(cfg.train):
        return
    if as_json:
        click.echo(json.dumps(summary))
    else:
        console.print(f"{summary['train_steps']} steps on {summary['rows']} rows, final loss {summary['final_loss']:.4f}")
        console.print(f"model: {summary['run_dir']}/model   report: {summary['report']}")
