"""`refeed build KIND key=value`: builder options from the command line; a wrong one names the valid ones."""

import json

from click.testing import CliRunner

from refeed.cli import main


def test_curriculum_pairs_and_bad_options(tmp_path):
    from refeed.store import Store

    url = f"sqlite:///{tmp_path / 'f.db'}"
    store = Store(url)
    ids = [store.log([{"role": "user", "content": "q"}], a) for a in "ABC"]
    store.feedback(None, "ranking", ranking=ids)
    store.close()
    out = tmp_path / "c.jsonl"
    res = CliRunner().invoke(main, ["build", "pairs", "order=curriculum", "ranking_pairs=adjacent", "--out", str(out), "--url", url])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"], r["stage"]) for r in rows] == [
        ("A", "B", 0), ("B", "C", 1)]
    res = CliRunner().invoke(main, ["build", "pairs", "order=random", "--out", str(out), "--url", url])
    assert res.exit_code == 1 and "order None or 'curriculum'" in res.output
    res = CliRunner().invoke(main, ["build", "graded", "ladders=[click]", "--out", str(out), "--url", url])
    assert res.exit_code == 2 and "its options are ladder=..." in res.output, res.output
