"""``refeed store`` / ``refeed build`` / ``refeed keys`` through the real click app."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from refeed.cli import main


def test_import_stats_build_export_and_keys(tmp_path):
    url = f"sqlite:///{tmp_path / 'f.db'}"
    data = tmp_path / "pairs.jsonl"
    data.write_text(
        "".join(
            json.dumps({"prompt": f"q{n}", "chosen": "good", "rejected": "bad"}) + "\n" for n in range(40)
        )
    )
    run = CliRunner().invoke
    res = run(main, ["store", "import", str(data), "--format", "trl", "--url", url])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["by_kind"] == {"preference": 40}
    assert json.loads(run(main, ["store", "stats", "--url", url]).output)["interactions"] == 80
    out = tmp_path / "pairs.parquet"
    res = run(
        main,
        [
            "build",
            "pairs",
            "--out",
            str(out),
            "--split-by",
            "prompt",
            "--eval-fraction",
            "0.25",
            "--url",
            url,
        ],
    )
    assert res.exit_code == 0, res.output
    import datasets

    train = datasets.Dataset.from_parquet(str(out))
    held = datasets.Dataset.from_parquet(str(tmp_path / "pairs.eval.parquet"))
    assert train.num_rows + held.num_rows == 40 and not set(map(str, train["prompt"])) & set(
        map(str, held["prompt"])
    )
    assert run(main, ["store", "export", str(tmp_path / "all.jsonl"), "--url", url]).exit_code == 0
    assert len((tmp_path / "all.jsonl").read_text().splitlines()) == 120
    key = run(main, ["keys", "create", "--role", "ingest", "--url", url]).output.strip()
    assert key.startswith("rf_")
    assert run(main, ["keys", "revoke", key.split(".")[0], "--url", url]).output.strip() == "revoked"


def test_errors_are_one_line_with_the_fix(tmp_path):
    url = f"sqlite:///{tmp_path / 'f.db'}"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt": "q"}\n')
    res = CliRunner().invoke(main, ["store", "import", str(bad), "--format", "trl", "--url", url])
    assert res.exit_code == 1 and "bad.jsonl:2" in res.output and "nothing was imported" in res.output
    res = CliRunner().invoke(main, ["build", "pairs", "--out", str(tmp_path / "x.csv"), "--url", url])
    assert res.exit_code == 2 and ".parquet or .jsonl" in res.output
    res = CliRunner().invoke(main, ["keys", "revoke", "rf_nope", "--url", url])
    assert res.exit_code == 1 and "no active api key" in res.output


def test_read_commands_never_create_a_store_at_a_mistyped_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'feedbak.db'}"
    for args in (["store", "stats"], ["build", "pairs", "--out", str(tmp_path / "p.jsonl")],
                 ["store", "export", str(tmp_path / "all.jsonl")]):
        res = CliRunner().invoke(main, [*args, "--url", url])
        assert res.exit_code == 1, res.output
        assert f"no store at {url}" in res.output and "does not exist" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no database, no output file
    res = CliRunner().invoke(main, ["store", "stats", "--url", f"sqlit:///{tmp_path / 'f.db'}"])
    assert res.exit_code == 1 and "is not a database URL (e.g. sqlite:///feedback.db)" in res.output, res.output
    res = CliRunner().invoke(main, ["store", "import", "x.jsonl", "--url", "postgresql+psycopg://u:pw@127.0.0.1:1/db"])
    assert res.exit_code == 1 and "cannot open the store at postgresql+psycopg://u:***@127.0.0.1:1/db" in res.output


def test_a_build_with_no_rows_fails_and_says_why(tmp_path):
    from refeed.store import Store

    url = f"sqlite:///{tmp_path / 'f.db'}"
    store = Store(url)
    out = tmp_path / "x.jsonl"

    def build(*args):
        res = CliRunner().invoke(main, ["build", *args, "--out", str(out), "--url", url])
        assert res.exit_code == 1 and not out.exists(), res.output
        return " ".join(res.output.split())

    assert "made no rows, so nothing was written: project 'default' of the store" in build("pairs")
    assert "is empty (check --url and --project)" in build("pairs")
    a, b = (store.log([{"role": "user", "content": "q"}], t) for t in ("A", "B"))
    store.feedback(a, "thumbs", up=True)
    assert "holds no ranking feedback, which this builder reads (feedback it holds: rating 1)" in build("groups")
    assert "holds no preference feedback" in build("pairs", "sources=[preference]")
    store.feedback(a, "preference", rejected=b, tie=True)
    assert "none of its feedback (preference 1) made a row (dropped: preference tie: 1)" in build(
        "pairs", "sources=[preference]")
    store.close()


def test_build_output_imports_back_as_trl_and_a_wrong_format_names_the_right_one(tmp_path):
    from refeed.store import Store

    first, second = (f"sqlite:///{tmp_path / n}" for n in ("a.db", "b.db"))
    store = Store(first)
    for n in range(3):
        good, bad = (store.log([{"role": "user", "content": f"{n}+1?"}], t) for t in (str(n + 1), "?"))
        store.feedback(good, "preference", rejected=bad)
        store.feedback(good, "thumbs", up=True)
    store.close()
    run = CliRunner().invoke
    for kind in ("pairs", "unpaired"):
        out = tmp_path / f"{kind}.parquet"
        assert run(main, ["build", kind, "--out", str(out), "--url", first]).exit_code == 0
        res = run(main, ["store", "import", str(out), "--format", "trl", "--url", second])
        assert res.exit_code == 0, res.output
        again = tmp_path / f"{kind}.again.jsonl"
        assert run(main, ["build", kind, "--out", str(again), "--url", second]).exit_code == 0
        import datasets

        cols = ["prompt", "chosen", "rejected"] if kind == "pairs" else ["prompt", "completion", "label"]
        key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
        want = sorted(key({c: r[c] for c in cols}) for r in datasets.Dataset.from_parquet(str(out)))
        got = sorted(key({c: json.loads(line)[c] for c in cols}) for line in again.read_text().splitlines())
        assert got == want
    res = run(main, ["store", "import", str(tmp_path / "pairs.parquet"), "--url", second])  # --format refeed
    assert res.exit_code == 1 and "looks like --format trl, not refeed" in res.output, res.output


@pytest.mark.postgres
def test_read_commands_never_migrate_a_postgres_database_that_is_not_a_store(pg_server_url, tmp_path):
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.engine import make_url

    from tests.conftest import fresh_pg_database

    empty = fresh_pg_database(pg_server_url)  # a real database, but not a refeed store (a mistyped name on the server)
    missing = make_url(empty).set(database="feedbak_typo").render_as_string(hide_password=False)
    for url, says in ((empty, "holds no refeed tables"), (missing, "does not exist")):
        for args in (["store", "stats"], ["build", "pairs", "--out", str(tmp_path / "p.jsonl")]):
            res = CliRunner().invoke(main, [*args, "--url", url])
            assert res.exit_code == 1 and says in res.output, res.output
    engine = create_engine(empty)
    assert inspect(engine).get_table_names() == []  # nothing was created in it
    engine.dispose()
    assert not (tmp_path / "p.jsonl").exists()
