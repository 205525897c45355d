"""Held-out measures for one training run: policy accuracy before / after with a paired interval, reward
models on eval rows against the cheap baselines (../shared/ACCEPTANCE.md: majority class, length only).

    before, after = evaluate(...), evaluate(...)            # refeed.eval.harness, the same TEST prompts
    compare(before, after)  -> {"gain": .., "gain_ci": (lo, hi), "by_difficulty": {d: {...}}}
    rm_metrics(rewards, rows) -> {"measure": "pair_accuracy", "value": .., "baselines": {...}, "n": ..}
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np


def paired_bootstrap(before: Sequence[float], after: Sequence[float], n: int = 1000, seed: int = 0
                     ) -> tuple[float, float]:
    """95% interval of mean(after - before) over the same items, resampled in pairs."""
    if len(before) != len(after) or not before:
        raise ValueError("a paired interval needs the same, non-empty items before and after")
    diffs = [a - b for a, b in zip(after, before, strict=True)]
    rng, m = random.Random(seed), len(diffs)
    means = sorted(sum(diffs[rng.randrange(m)] for _ in range(m)) / m for _ in range(n))
    return means[int(0.025 * n)], means[min(n - 1, int(0.975 * n))]


def compare(before, after) -> dict[str, Any]:
    """Before / after ``EvalResult``s on the same examples -> overall and per-difficulty accuracy, n, gain
    and its paired 95% bootstrap interval."""
    b = {r["id"]: r for r in before.records}
    pairs = [(b[r["id"]], r) for r in after.records if r["id"] in b]
    if len(pairs) != len(before.records):
        raise ValueError("before and after were measured on different examples")

    def summary(ps):
        x, y = [float(p[0]["correct"]) for p in ps], [float(p[1]["correct"]) for p in ps]
        lo, hi = paired_bootstrap(x, y)
        return {"n": len(ps), "before": sum(x) / len(x), "after": sum(y) / len(y),
                "gain": (sum(y) - sum(x)) / len(x), "gain_ci": [lo, hi]}

    levels = sorted({p[0]["difficulty"] for p in pairs})
    return {**summary(pairs),
            "by_difficulty": {d: summary([p for p in pairs if p[0]["difficulty"] == d]) for d in levels}}


def _answer_len(row: dict, key: str) -> int:
    v = row[key]
    return len(v if isinstance(v, str) else (v[-1].get("content") or "") if v else "")


def _auc(low: np.ndarray, high: np.ndarray) -> float:
    """P(a score from ``high`` > one from ``low``), ties half (Mann-Whitney U through average ranks)."""
    both = np.concatenate([low, high])
    _, inv, counts = np.unique(both, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inv]  # 1-based average rank of each score
    u = ranks[len(low):].sum() - len(high) * (len(high) + 1) / 2
    return float(u / (len(low) * len(high)))


def _concordance(scores: Sequence[float], levels: Sequence[float]) -> float | None:
    """Share of pairs with different levels that the scores order the same way (ties count half); for 0/1
    levels this is the ROC AUC. Per pair of levels through ranks (O(n log n)), so a bootstrap of it is cheap."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(levels, dtype=np.float64)
    groups = [s[y == v] for v in np.unique(y)]
    agree = total = 0.0
    for i, lo in enumerate(groups):
        for hi in groups[i + 1:]:
            pairs = len(lo) * len(hi)
            agree, total = agree + pairs * _auc(lo, hi), total + pairs
    return agree / total if total else None


def bootstrap_interval(stat, n_items: int, reps: int = 1000, seed: int = 0) -> tuple[float, float] | None:
    """95% interval of ``stat(indices)`` over ``reps`` resamples of the ``n_items`` eval rows (with replacement);
    replicates where the statistic is undefined (e.g. one class only) are left out."""
    rng = np.random.default_rng(seed)
    vals = sorted(v for v in (stat(rng.integers(0, n_items, n_items)) for _ in range(reps)) if v is not None)
    if not vals:
        return None
    return vals[int(0.025 * len(vals))], vals[min(len(vals) - 1, int(0.975 * len(vals)))]


def pair_metrics(chosen: Sequence[float], rejected: Sequence[float], rows: list[dict]) -> dict[str, Any]:
    """Held-out pair accuracy (chosen scored above rejected, ties half) with its 95% bootstrap interval over the
    pairs, against a length-only scorer (both ways: longer wins, shorter wins; the better of the two) and chance."""
    n = len(rows)
    wins = np.array([1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected, strict=True)])
    acc = float(wins.mean())
    longer = sum(_answer_len(x, "chosen") > _answer_len(x, "rejected") for x in rows) / n
    shorter = sum(_answer_len(x, "chosen") < _answer_len(x, "rejected") for x in rows) / n
    return {"measure": "pair_accuracy", "value": acc, "n": n,
            "value_ci": bootstrap_interval(lambda i: float(wins[i].mean()), n),
            "baselines": {"chance": 0.5, "length_only": max(longer, shorter)}}


def label_metrics(rewards: Sequence[float], labels: Sequence[float], rows: list[dict],
                  probabilities: bool) -> dict[str, Any]:
    """Binary labels: accuracy at 0.5 (probabilities) or at the median score, the AUC with its 95% bootstrap
    interval (the majority class and any constant score have AUC 0.5), Brier score and expected calibration
    error (10 bins) when the rewards are probabilities, against majority class, base rate and length only.
    Graded labels (levels 0..K): concordance of reward and level (pairs of different levels ordered right)."""
    n = len(rows)
    lengths = [_answer_len(r, "completion") for r in rows]
    scores, levels = np.asarray(rewards), np.asarray(labels)  # what the bootstrap resamples
    if set(labels) - {0.0, 1.0}:
        c = _concordance(rewards, labels)
        lc = _concordance(lengths, labels)
        return {"measure": "level_concordance", "value": c, "n": n,
                "value_ci": bootstrap_interval(lambda i: _concordance(scores[i], levels[i]), n),
                "baselines": {"chance": 0.5, "length_only": None if lc is None else max(lc, 1 - lc)}}
    cut = 0.5 if probabilities else sorted(rewards)[n // 2]
    acc = sum((r >= cut) == (y == 1.0) for r, y in zip(rewards, labels, strict=True)) / n
    pos = sum(labels) / n
    lc = _concordance(lengths, labels)
    out = {"measure": "binary_accuracy", "value": acc, "n": n, "positive_rate": pos,
           "auc": _concordance(rewards, labels), "auc_ci": bootstrap_interval(lambda i: _concordance(scores[i], levels[i]), n),
           "baselines": {"majority_class": max(pos, 1 - pos), "length_only_auc": None if lc is None else max(lc, 1 - lc)}}
    if probabilities:
        out["brier"] = sum((r - y) ** 2 for r, y in zip(rewards, labels, strict=True)) / n
        out["ece"] = _ece(rewards, labels)
        out["baselines"]["base_rate_brier"] = pos * (1 - pos)  # always predicting the positive rate
    return out


def _ece(probs: Sequence[float], labels: Sequence[float], bins: int = 10) -> float:
    total, n = 0.0, len(probs)
    for b in range(bins):
        idx = [i for i, p in enumerate(probs) if b / bins <= p < (b + 1) / bins or (b == bins - 1 and p == 1.0)]
        if idx:
            conf = sum(probs[i] for i in idx) / len(idx)
            acc = sum(labels[i] for i in idx) / len(idx)
            total += len(idx) / n * abs(conf - acc)
    return total


def rm_metrics(score_fn, rows: list[dict], probabilities: bool) -> dict[str, Any]:
    """Score eval ``rows`` with ``score_fn(prompts, completions) -> list[float]`` and measure by their
    columns: pairs (chosen / rejected), labels (binary or graded), or span annotations (no span = good)."""
    if not rows:
        raise ValueError("no eval rows to measure the reward model on")
    prompts = [r["prompt"] for r in rows]
    if "chosen" in rows[0]:
        chosen = score_fn(prompts, [r["chosen"] for r in rows])
        rejected = score_fn(prompts, [r["rejected"] for r in rows])
        return pair_metrics(chosen, rejected, rows)
    rewards = score_fn(prompts, [r["completion"] for r in rows])
    if "label" in rows[0]:
        labels = [float(r["label"]) for r in rows]
    elif "spans" in rows[0]:
        labels = [0.0 if r["spans"] else 1.0 for r in rows]
    else:
        raise ValueError(f"eval rows need chosen/rejected, label or spans columns; they have {sorted(rows[0])}")
    out = label_metrics(rewards, labels, rows, probabilities and all(0.0 <= r <= 1.0 for r in rewards))
    if out.get("value") is None or (isinstance(out["value"], float) and math.isnan(out["value"])):
        raise ValueError("the eval rows all carry the same label; nothing to measure")
    return out
