"""Progress bars at 80 columns keep their counts and times whole; numbers print as integers where integral."""

import io

from rich.console import Console

from refeed.cli._common import fmt_number, stage_progress
from refeed.pipelines.demo import Stage


def test_counts_and_eta_stay_visible_at_80_columns():
    buf = io.StringIO()
    out = Console(file=buf, width=80, force_terminal=False, color_system=None)
    with stage_progress(out=out) as report:
        report(Stage("sample eval", 870, 1740))
        report(Stage("train", 1234, 2000, {"loss": 0.123456, "rewards/margin": 1.5, "rewards/accuracy": 0.75,
                                          "pairs": 1740.0}))
    text = buf.getvalue()
    lines = [line for line in text.splitlines() if line.strip()]
    assert any("870/1740" in line and "eta" in line for line in lines), text
    assert any("1234/2000" in line and "0:00:00" in line for line in lines), text
    assert all(len(line) <= 80 for line in lines), text
    assert "e+03" not in text


def test_numbers_print_as_integers_when_integral():
    assert fmt_number(1740.0) == "1740" and fmt_number(12) == "12" and fmt_number(0.12345) == "0.123"
    assert fmt_number(1.5e-5) == "1.500e-05" and fmt_number(True) == "True"
