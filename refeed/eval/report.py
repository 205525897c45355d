"""A run's ``report.html``: the config that matters, PNG plots (training loss, reward margin, eval curves next
to them, online runs' reward per generation with the DEV points, entropy / KL / clipping, accuracy before/after), the held-out before/after table and a few held-out answers before and after.

The HTML references the PNGs next to it, so the folder can be zipped, mailed, or opened from disk.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any


def _plot_series(path: Path, history: list[dict[str, float]], keys: list[str], title: str) -> bool:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    present = [k for k in keys if any(k in h for h in history)]
    if not present:
        return False
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    for k in present:
        pts = [(h["step"], h[k]) for h in history if k in h]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=k, linewidth=1.5)
    ax.set_xlabel("optimizer step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _with_curve(history: list[dict], curve: list[dict] | None) -> list[dict]:
    """Training records followed by the eval points, so one plot shows both against the step."""
    return [*history, *(c for c in curve or [] if "dev/accuracy" in c)]


def _plot_accuracy(path: Path, summary: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before = summary.get("accuracy_before_by_difficulty") or {}
    after = summary.get("accuracy_after_by_difficulty") or {}
    labels = ["all"] + [f"level {d}" for d in before]
    b = [summary["accuracy_before"]] + list(before.values())
    a = [summary["accuracy_after"]] + [after.get(d, 0.0) for d in before]
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], b, width=0.4, label="before", color="#9aa5b1")
    ax.bar([x + 0.2 for x in xs], a, width=0.4, label="after", color="#2f7ed8")
    ax.set_xticks(list(xs), labels)
    ax.set_ylim(0, 1)
    ax.set_ylabel("held-out accuracy")
    ax.set_title("Held-out accuracy before and after learning from feedback")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(run_dir: Path, history: list[dict[str, float]], summary: dict[str, Any],
                 curve: list[dict[str, float]] | None = None) -> Path:
    """Write PNG plots and ``report.html`` into ``run_dir``; returns the HTML path. ``curve``: eval points
    during training (``{"step": .., "dev/accuracy": ..}`` or ``"eval/<measure>"``), plotted beside the loss."""
    figures = []
    if _plot_series(run_dir / "loss.png", history, ["loss"], "Training loss"):
        figures.append(("loss.png", "Training loss"))
    if curve:
        keys = sorted({k for c in curve for k in c if k != "step" and not k.endswith("/n")})
        if _plot_series(run_dir / "eval.png", curve, keys, "Held-out eval during training"):
            figures.append(("eval.png", "Eval during training (" + ", ".join(keys) + ")"))
    if _plot_series(run_dir / "margin.png", history, ["rewards/margin", "rewards/chosen", "rewards/rejected"], "Implicit reward"):
        figures.append(("margin.png", "Reward margin (chosen - rejected)"))
    online = any("reward/mean" in h for h in history)  # the online loop: rewards of the sampled answers
    if online:
        keys = ["reward/mean", *sorted({k for h in history for k in h if k.startswith("rewards/") and k.endswith("/mean")})]
        _plot_series(run_dir / "online.png", _with_curve(history, curve), [*keys, "dev/accuracy"],
                     "Reward of the sampled answers, held-out DEV accuracy")
        figures.append(("online.png", "Online: mean reward per generation, with the eval.every DEV points"))
        policy = ["entropy", "kl", "clip/low", "clip/high", "frac_reward_zero_std", "completions/truncated_frac"]
        if _plot_series(run_dir / "policy.png", history, policy, "Policy: entropy, KL, clipping, zero-std groups"):
            figures.append(("policy.png", "Entropy (sampled tokens), KL, clip fractions, zero-std and truncated fractions"))
    # Every other objective's metrics, one plot per prefix (rm/ for reward models, c3po/, kto/, ...).
    prefixes = sorted({k.split("/")[0] for h in history for k in h if "/" in k} - {"rewards"}
                      - ({"reward", "clip"} if online else set()))
    for prefix in prefixes:
        keys = sorted({k for h in history for k in h if k.startswith(prefix + "/")})
        if _plot_series(run_dir / f"{prefix}.png", history, keys, f"{prefix} metrics"):
            figures.append((f"{prefix}.png", f"{prefix} metrics (training batches)"))
    if "accuracy_before" in summary:
        _plot_accuracy(run_dir / "accuracy.png", summary)
        figures.append(("accuracy.png", "Accuracy before / after"))
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
        for k, v in summary.items()
        if not isinstance(v, dict)
    )
    imgs = "".join(f'<figure><img src="{f}" alt="{html.escape(c)}"><figcaption>{html.escape(c)}</figcaption></figure>' for f, c in figures)
    imgs = _config_html(summary.get("config")) + imgs + _heldout_html(summary.get("heldout"))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>refeed run {html.escape(run_dir.name)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}th,td{{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}}
figure{{display:inline-block;margin:1em}}img{{max-width:440px}}</style></head>
<body><h1>refeed run <code>{html.escape(run_dir.name)}</code></h1>
<table>{rows}</table>{imgs}</body></html>"""
    out = run_dir / "report.html"
    out.write_text(page)
    return out


def _config_html(config: dict | None) -> str:
    """The settings a reader needs to judge a run: the objective's parameters (beta ...), lr, steps."""
    if not config:
        return ""
    flat = {**{f"objective.{k}": v for k, v in (config.get("objective") or {}).items()},
            **{k: v for k, v in config.items() if k != "objective"}}
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in flat.items())
    return f"<h2>Config</h2><table>{rows}</table>"


def heldout_rows(h: dict) -> list[tuple[str, ...]]:
    """The held-out table as text rows (header first): the report and the CLI print the same table."""
    if h.get("kind") == "policy":
        out = [("", "n", "before", "after", "gain", "95% CI")]
        for name, r in [("all", h), *((f"level {d}", r) for d, r in h["by_difficulty"].items())]:
            lo, hi = r["gain_ci"]
            out.append((name, str(r["n"]), f"{r['before']:.3f}", f"{r['after']:.3f}", f"{r['gain']:+.3f}",
                        f"[{lo:+.3f}, {hi:+.3f}]"))
        return out
    out = [("measure", "n", "value"), (h["measure"], str(h["n"]), _fmt(h["value"]))]
    for k in ("auc", "brier", "ece", "positive_rate"):
        if h.get(k) is not None:
            out.append((k, str(h["n"]), _fmt(h[k])))
    out += [(f"baseline: {k}", str(h["n"]), _fmt(v)) for k, v in h.get("baselines", {}).items() if v is not None]
    return out


def _heldout_html(h: dict | None) -> str:
    if not h:
        return ""
    rows = heldout_rows(h)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    title = f"Held out: {h.get('task', '')} {h.get('split', 'eval rows')}" if h.get("kind") == "policy" else "Held out: reward model on eval rows"
    out = f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>"
    if h.get("answers"):
        cells = "".join(
            f"<tr><td>{html.escape(a['prompt'])}</td><td>{html.escape(a['expected'])}</td>"
            f"<td>{html.escape(a['before'])} {'&#10003;' if a['before_correct'] else '&#10007;'}</td>"
            f"<td>{html.escape(a['after'])} {'&#10003;' if a['after_correct'] else '&#10007;'}</td></tr>"
            for a in h["answers"])
        out += ("<h2>Held-out answers before and after</h2><table><tr><th>prompt</th><th>expected</th>"
                f"<th>before</th><th>after</th></tr>{cells}</table>")
    return out


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)
