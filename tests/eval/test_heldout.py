"""Reward-model measures: the rank-based concordance / AUC equals the all-pairs definition (kept here as the
reference), and the bootstrap intervals hold their value and shrink to a point for a perfect scorer."""

import random

import pytest

from refeed.eval.heldout import _concordance, label_metrics, pair_metrics


def naive_concordance(scores, levels):
    """Every pair with different levels, in Python: the definition."""
    agree = total = 0.0
    for i in range(len(scores)):
        for j in range(i + 1, len(scores)):
            if levels[i] == levels[j]:
                continue
            total += 1
            s = (scores[i] - scores[j]) * (levels[i] - levels[j])
            agree += 1.0 if s > 0 else 0.5 if s == 0 else 0.0
    return agree / total if total else None


@pytest.mark.parametrize("seed", range(5))
def test_rank_concordance_is_the_all_pairs_definition_with_ties(seed):
    rng = random.Random(seed)
    for _ in range(40):
        n = rng.randint(1, 50)
        scores = [rng.choice([0.0, 0.5, 1.0, rng.random()]) for _ in range(n)]  # many ties
        levels = [rng.choice([0, 1, 2, 4]) for _ in range(n)]
        want, got = naive_concordance(scores, levels), _concordance(scores, levels)
        assert (want is None and got is None) or got == pytest.approx(want, abs=1e-12)


def test_intervals_hold_the_value_and_a_perfect_scorer_is_a_point():
    rng = random.Random(0)
    labels = [float(rng.random() < 0.2) for _ in range(400)]
    rows = [{"completion": "x" * rng.randint(1, 9)} for _ in labels]
    noisy = [0.3 * y + 0.7 * rng.random() for y in labels]
    m = label_metrics(noisy, labels, rows, probabilities=True)
    lo, hi = m["auc_ci"]
    assert lo < m["auc"] < hi and lo > 0.5  # a real signal, above the majority class's 0.5
    assert m["baselines"]["base_rate_brier"] == pytest.approx(m["positive_rate"] * (1 - m["positive_rate"]))
    assert label_metrics(labels, labels, rows, probabilities=True)["auc_ci"] == (1.0, 1.0)
    pairs = [{"chosen": "a", "rejected": "bb"}] * 50
    p = pair_metrics([1.0] * 25 + [0.0] * 25, [0.5] * 50, pairs)
    assert p["value"] == 0.5 and p["value_ci"][0] < 0.5 < p["value_ci"][1]
