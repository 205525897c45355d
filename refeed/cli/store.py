"""``refeed store import|export|stats``, ``refeed keys create|revoke``, ``refeed build <kind>``.

The store URL comes from ``--url``, else ``$REFEED_STORE_URL``, else ``sqlite:///feedback.db``.
"""

from __future__ import annotations

import json
import os

import click

from refeed.cli import main
from refeed.datasets import BUILDERS  # torch-free and light: the builders import `datasets` lazily

DEFAULT_URL = "sqlite:///feedback.db"
url_option = click.option(
    "--url",
    default=lambda: os.environ.get("REFEED_STORE_URL", DEFAULT_URL),
    show_default="$REFEED_STORE_URL or sqlite:///feedback.db",
    help="store database URL",
)
project_option = click.option("--project", default="default", show_default=True)


def _open(url: str, project: str, must_exist: bool = False):
    """The store at ``url``; with ``must_exist`` (commands that only read) a SQLite file that is not there
    is refused instead of created, so a mistyped URL leaves nothing behind."""
    from sqlalchemy.exc import SQLAlchemyError

    from refeed.store import Store, StoreError

    if must_exist:
        _check_exists(url)
    try:
        return Store(url, project=project)
    except StoreError as e:
        raise click.ClickException(str(e)) from None
    except SQLAlchemyError as e:  # an unknown dialect, a server that does not answer, a database that is not there
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise click.ClickException(f"cannot open the store at {_shown(url)}: {reason}") from None


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL at all: show it as given
        return url


def _check_exists(url: str) -> None:
    from pathlib import Path

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
        parsed.get_dialect()
    except ArgumentError:
        raise click.ClickException(f"'{url}' is not a database URL (e.g. sqlite:///feedback.db)") from None
    if parsed.get_backend_name() != "sqlite":
        _check_server_store(url)
        return
    if parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database).expanduser()
        if not path.is_file():
            raise click.ClickException(
                f"no store at {url}: {path} does not exist (check --url or $REFEED_STORE_URL; "
                "`refeed store import` and `refeed serve` create a store)"
            )


def _check_server_store(url: str) -> None:
    """A server database (PostgreSQL) that holds no refeed schema is refused, never migrated: a read
    command pointed at the wrong database name must leave that database as it was."""
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            has_schema = inspect(conn).has_table("alembic_version")
    except SQLAlchemyError as e:  # a database that is not there, a server that does not answer
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise click.ClickException(f"cannot open the store at {_shown(url)}: {reason}") from None
    finally:
        engine.dispose()
    if not has_schema:
        raise click.ClickException(
            f"no store at {_shown(url)}: that database holds no refeed tables (check --url or $REFEED_STORE_URL; "
            "`refeed store import` and `refeed serve` create a store)"
        )


def _guard(fn, *args, **kw):
    """Run a store call; its errors become one-line CLI errors (exit code 1)."""
    from refeed.store import StoreError

    try:
        return fn(*args, **kw)
    except (StoreError, FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None


@main.group()
def store() -> None:
    """Import, export and inspect the feedback store."""


@store.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["refeed", "trl", "openai-chat", "qa-feedback"]),
    default="refeed",
    show_default=True,
)
@url_option
@project_option
def import_(path, fmt, url, project):
    """Import PATH (JSONL, a JSON array or Parquet) in one transaction; a bad line is refused with its
    number and nothing is written.

    \b
    Formats:
      refeed       refeed's own JSONL (`refeed store export`), lossless
      trl          every TRL type: preference (explicit or implicit prompt, as trl-lib's HH-RLHF and
                   UltraFeedback), unpaired preference, prompt-completion, language modelling;
                   standard or conversational
      openai-chat  chat logs {request, response}; fine-tuning files {messages} (weight per
                   assistant turn) and {input, preferred_output, non_preferred_output}
      qa-feedback  Fine-Grained RLHF's qa-feedback JSON

    \b
    Example:
      refeed store import interactions.jsonl --format openai-chat
      refeed store import hh-rlhf.parquet --format trl
    """
    from dataclasses import asdict

    from refeed.store.formats import import_file

    report = _guard(import_file, _open(url, project), path, fmt)
    click.echo(json.dumps(asdict(report)))


@store.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@url_option
@project_option
def export(path, url, project):
    """Export every interaction and feedback to PATH as refeed JSONL (lossless)."""
    from refeed.store.formats import export_jsonl

    n = _guard(export_jsonl, _open(url, project, must_exist=True), path)
    click.echo(f"wrote {n} records to {path}")


@store.command("stats")
@url_option
@project_option
def stats(url, project):
    """Counts of interactions and feedback by kind and source."""
    click.echo(json.dumps(_open(url, project, must_exist=True).stats(), indent=2))


@main.group()
def keys() -> None:
    """Create and revoke API keys (stored hashed)."""


@keys.command("create")
@click.option("--role", type=click.Choice(["feedback", "ingest", "admin"]), required=True)
@url_option
@project_option
def create_key(role, url, project):
    """Print a new key once; only its hash is stored."""
    click.echo(_open(url, project).create_api_key(project, role))


@keys.command("revoke")
@click.argument("key")
@url_option
def revoke_key(key, url):
    """Revoke KEY (the key or its rf_... prefix)."""
    _guard(_open(url, "default").revoke_api_key, key)
    click.echo("revoked")


@main.command()
@click.argument("kind", type=click.Choice(list(BUILDERS)))
@click.argument("params", nargs=-1)
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="a .parquet or .jsonl file")
@click.option("--split-by", type=click.Choice(["prompt", "none"]), default="none", show_default=True)
@click.option("--eval-fraction", type=float, default=0.1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@url_option
@project_option
def build(kind, params, out, split_by, eval_fraction, seed, url, project):
    """Build a training dataset of KIND from the store and write it to OUT (eval split beside it).

    PARAMS are the builder's options as key=value (YAML values), e.g. order=curriculum min_gap=2
    for pairs, or ladder=[click,copy,thumbs_up] for graded.

    \b
    Example:
      refeed build pairs --out pairs.parquet --split-by prompt --eval-fraction 0.1
      refeed train recipes/dpo.yaml --data pairs.parquet
      refeed build pairs order=curriculum --out curriculum.jsonl   # Curry-DPO's stages
    """
    from pathlib import Path

    from refeed.datasets import build_report, split_by_prompt

    if not out.endswith((".parquet", ".jsonl")):
        raise click.UsageError(f"--out must end in .parquet or .jsonl, got {out!r}")
    options = _builder_options(BUILDERS[kind], params)
    store = _open(url, project, must_exist=True)
    ds = _guard(BUILDERS[kind], store, project=project, **options)
    if ds.num_rows == 0:
        raise click.ClickException(_why_empty(kind, store, project, url, options, build_report(ds)))
    parts = {"train": ds}
    if split_by == "prompt":
        column = "prompt" if "prompt" in ds.column_names else ds.column_names[0]
        parts = dict(_guard(split_by_prompt, ds, eval_fraction, seed, column))
    for name, part in parts.items():
        path = (
            Path(out)
            if name == "train"
            else Path(out).with_name(f"{Path(out).stem}.{name}{Path(out).suffix}")
        )
        part.to_parquet(path) if path.suffix == ".parquet" else part.to_json(
            path, lines=True, force_ascii=False
        )
        click.echo(f"{name}: {part.num_rows} rows -> {path}")
    report = build_report(ds)
    report["contradictions"] = len(report["contradictions"])
    click.echo(json.dumps(report))


def _why_empty(kind: str, store, project: str, url: str, options: dict, report: dict) -> str:
    """One line on why ``refeed build KIND`` made no rows (nothing is written)."""
    from refeed.datasets import READS

    stats = store.stats(project)
    head = f"refeed build {kind} made no rows, so nothing was written: "
    if not stats["interactions"] and not stats["feedback"]:
        return head + f"project '{project}' of the store at {url} is empty (check --url and --project)"
    reads = tuple(options.get("sources") or READS[kind])
    present = {k: n for k, n in stats["feedback_by_kind"].items() if k in reads}
    if not present:
        held = ", ".join(f"{k} {n}" for k, n in stats["feedback_by_kind"].items()) or "none"
        also = " nor answers imported to imitate (TRL prompt-completion rows)" if kind == "sft" else ""
        return head + (f"project '{project}' holds no {' / '.join(reads)} feedback{also}, which this builder "
                       f"reads (feedback it holds: {held})")
    dropped = "; ".join(f"{why}: {n}" for why, n in (report.get("dropped") or {}).items())
    found = ", ".join(f"{k} {n}" for k, n in present.items())
    return head + f"none of its feedback ({found}) made a row" + (f" (dropped: {dropped})" if dropped else "")


def _builder_options(fn, params) -> dict:
    """``key=value`` words -> keyword arguments of builder ``fn``; an unknown key names the valid ones."""
    import inspect

    import yaml

    valid = [n for n, p in inspect.signature(fn).parameters.items() if p.kind is p.KEYWORD_ONLY and n != "project"]
    out = {}
    for word in params:
        key, eq, value = word.partition("=")
        if not eq or key not in valid:
            raise click.UsageError(f"'{word}' is not an option of this builder; its options are "
                                   f"{', '.join(f'{v}=...' for v in valid) or 'none'}")
        out[key] = yaml.safe_load(value)
    return out
