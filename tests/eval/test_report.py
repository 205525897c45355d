"""report.html shows every objective's metrics: one PNG per metric prefix besides loss and margin."""

from refeed.eval.report import write_report


def test_reward_model_and_objective_metrics_get_their_own_plots(tmp_path):
    history = [{"step": i, "loss": 1 / i, "lr": 1e-3, "rm/accuracy": i / 10, "c3po/kl_out_of_scope": 0.01 * i}
               for i in range(1, 6)]
    html = write_report(tmp_path, history, {"objective": "bradley_terry"}).read_text()
    assert {p.name for p in tmp_path.glob("*.png")} == {"loss.png", "rm.png", "c3po.png"}
    assert 'src="rm.png"' in html and 'src="c3po.png"' in html and 'src="margin.png"' not in html
