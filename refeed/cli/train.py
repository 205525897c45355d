"""``refeed train``."""

from __future__ import annotations

import json

import click

from refeed.cli import main
from refeed.cli._common import console, load_config, model_option, print_rows, stage_progress, with_model


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--data", "data_path", type=click.Path(dir_okay=False), help="JSONL / Parquet rows in TRL columns.")
@click.option("--eval-data", "eval_path", type=click.Path(dir_okay=False),
              help="Held-out rows (default: the .eval file `refeed build --split-by prompt` wrote beside --data).")
@click.option("--resume", type=click.Path(file_okay=False), help="Continue exactly from run_dir/checkpoint-<step>.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object on stdout.")
@model_option()
def train(recipe: str, overrides: tuple[str, ...], data_path: str | None, eval_path: str | None, resume: str | None,
          as_json: bool, model_path: str | None) -> None:
    """Train with one objective from a YAML recipe (sections model, data, objective, train, eval).

    OVERRIDES are dotted keys, e.g. objective.beta=0.2 train.max_steps=200. Without --data the rows
    come from the built-in task, judged by the simulated user with the feedback kind the objective
    needs (data.feedback=... picks another). The run ends with a held-out before/after table. Runs
    under accelerate: `accelerate launch -m refeed train ...` for several processes or GPUs.

    \b
    Example:
        refeed train recipes/dpo.yaml objective.beta=0.5 train.max_steps=100 eval.every=20
    """
    from refeed.config import ConfigError
    from refeed.pipelines.train_job import TrainJobConfig, run_train

    if data_path:
        overrides = (*overrides, f"data.path={data_path}")
    overrides = with_model(overrides, model_path, "model.path")  # the recipe's model.path= works as well
    if eval_path:
        overrides = (*overrides, f"data.eval_path={eval_path}")
    cfg = load_config(TrainJobConfig, recipe, overrides)
    with stage_progress() as report:
        try:
            summary = run_train(cfg, resume=resume, report=report,
                                notice=lambda m: console.print(f"[yellow]warning:[/] {m}", soft_wrap=True))
        except (ConfigError, ValueError, FileNotFoundError) as e:
            raise click.UsageError(str(e)) from None
        except RuntimeError as e:  # the run could not get going (e.g. no rows from the simulated user)
            raise click.ClickException(str(e)) from None
    from refeed.train.loop import is_main_process

    if not is_main_process(cfg.train):
        return
    if as_json:
        click.echo(json.dumps(summary, default=str))
        return
    loss = summary["final_loss"]
    console.print(f"{summary['train_steps']} steps on {summary['rows']} rows ({summary['data']}), final loss "
                  f"{'n/a' if loss is None else f'{loss:.4f}'}")
    console.print(f"model: {summary['run_dir']}/model   report: {summary['report']}")
    if summary.get("heldout"):
        from refeed.eval.report import heldout_rows

        h = summary["heldout"]
        title = ("held-out reward model on eval rows" if h["kind"] != "policy" else
                 f"held-out {h['task']} on eval rows, before and after" if h["split"] == "eval rows" else
                 f"held-out {h['task']} {h['split']} accuracy, before and after")
        print_rows(title, heldout_rows(h))
