"""report.html shows every objective's metrics: one PNG per metric prefix besides loss and margin."""

from refeed.eval.report import write_report


def test_reward_model_and_objective_metrics_get_their_own_plots(tmp_path):
    history = [{"step": i, "loss": 1 / i, "lr": 1e-3, "rm/accuracy": i / 10, "c3po/kl_out_of_scope": 0.01 * i}
               for i in range(1, 6)]
    html = write_report(tmp_path, history, {"objective": "bradley_terry"}).read_text()
    assert {p.name for p in tmp_path.glob("*.png")} == {"loss.png", "rm.png", "c3po.png"}
    assert 'src="rm.png"' in html and 'src="c3po.png"' in html and 'src="margin.png"' not in html


def test_report_shows_config_eval_curve_heldout_table_and_answers(tmp_path):
    from refeed.eval.harness import EvalResult
    from refeed.eval.heldout import compare
    from refeed.eval.report import heldout_rows

    def result(correct):
        recs = [{"id": str(i), "prompt": f"What is {i}+0?", "completion": str(i if c else i + 1), "correct": c,
                 "expected": str(i), "difficulty": 1 + i % 2} for i, c in enumerate(correct)]
        return EvalResult(sum(correct) / len(correct), len(correct), records=recs)

    before, after = result([False] * 30 + [True] * 10), result([True] * 30 + [True] * 10)
    h = {"kind": "policy", "split": "test", "task": "arithmetic", **compare(before, after), "answers": [
        {"prompt": "What is 1+0?", "expected": "1", "before": "2", "after": "1", "before_correct": False,
         "after_correct": True}]}
    assert h["n"] == 40 and h["gain"] == 0.75 and 0.5 < h["gain_ci"][0] <= 0.75 <= h["gain_ci"][1]
    assert set(h["by_difficulty"]) == {1, 2} and h["by_difficulty"][1]["n"] == 20
    rows = heldout_rows(h)
    assert rows[0] == ("", "n", "before", "after", "gain", "95% CI") and rows[1][:5] == ("all", "40", "0.250", "1.000", "+0.750")
    curve = [{"step": s, "dev/accuracy": 0.1 * s, "dev/n": 10} for s in range(4)]
    summary = {"objective": "dpo", "config": {"objective": {"name": "dpo", "beta": 0.1}, "lr": 2e-4, "steps": 3},
               "heldout": h}
    page = write_report(tmp_path, [{"step": 1, "loss": 0.5}], summary, curve).read_text()
    assert 'src="eval.png"' in page and "objective.beta" in page and "0.0002" in page
    assert "Held-out answers before and after" in page and "+0.750" in page
