"""The held-out side of ``refeed train``: before / after, eval points during training, and the curve file.

A policy is measured on the task's TEST split (``refeed.eval.harness.evaluate``; ``refeed eval tasks`` runs
the same harness alone); a reward model on eval rows (``refeed.eval.heldout.rm_metrics``). Points during
training (``eval.every``) use the DEV split, so nothing is tuned on TEST, or the eval rows for reward models;
they go to ``run_dir/eval.jsonl`` and the report plots them next to the training curves.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refeed.pipelines.demo import Stage

CURVE = "eval.jsonl"


@dataclass
class Measure:
    ecfg: Any  # refeed.pipelines.train_job.EvalSection
    task: Any
    tok: Any
    objective: Any
    eval_rows: list[dict] | None
    report: Callable[[Stage], None]
    run_dir: Path
    main: bool = True
    max_length: int = 512

    @property
    def is_rm(self) -> bool:
        from refeed.objectives import Head

        return self.objective.needs.head is Head.SCORE

    def wrap(self, model):
        """Reward models are wrapped in their score head here, not in the loop, so that eval points during
        training can score with the very module being trained (the loop keeps an existing ``ScoreModel``)."""
        if not self.is_rm or not self.eval_rows:
            return model
        from refeed.models.score_head import ScoreModel

        return model if isinstance(model, ScoreModel) else ScoreModel.wrap(model, int(self.objective.needs.num_heads))

    def _task_eval(self, model, split: str, limit: int, stage: str):
        from refeed.eval.harness import evaluate

        examples = self.task.examples(split)
        examples = examples[:limit] if limit else examples
        tick = lambda d, t: self.report(Stage(stage, d, t))  # noqa: E731
        return evaluate(model, self.tok, self.task, examples=examples, max_new_tokens=self.ecfg.max_new_tokens, tick=tick)

    def before(self, model):
        if self.task is None:  # custom data: the policy's measure on the eval rows
            self.report(Stage("eval before", 0, 1))
            out = policy_row_measure(model, self.tok, self.eval_rows, self.max_length)
            self.report(Stage("eval before", 1, 1))
            return out
        return self._task_eval(model, self.ecfg.split, self.ecfg.prompts, "eval before")

    def _rm(self, model) -> dict[str, Any]:
        from refeed.eval.heldout import rm_metrics
        from refeed.objectives import BatchKind
        from refeed.rewards import RewardModel, score

        rm = RewardModel(model, self.tok, self.objective)
        n = len(self.eval_rows)
        done = [0]

        def score_fn(prompts, completions):
            out = score(rm, prompts, completions).tolist()
            done[0] += len(prompts)
            self.report(Stage("eval rm", min(done[0], 2 * n), 2 * n if "chosen" in self.eval_rows[0] else n))
            return out

        was = model.training
        model.eval()
        try:
            return rm_metrics(score_fn, self.eval_rows, self.objective.batch_kind is BatchKind.UNPAIRED)
        finally:
            model.train(was)

    def curve_hook(self, model, task_eval: bool) -> Callable[[int, int], None]:
        """``hook(step, total)``: an eval point every ``eval.every`` steps and at the end (and one at step 0)."""
        every = self.ecfg.every
        if not every or not self.main or self.task is None or not (task_eval or (self.is_rm and self.eval_rows)):
            return lambda step, total: None
        path = self.run_dir / CURVE

        def point(step: int) -> None:
            if task_eval:
                r = self._task_eval(model, "dev", self.ecfg.dev_prompts, "eval dev")
                rec = {"step": step, "dev/accuracy": r.accuracy, "dev/n": r.n}
            else:
                m = self._rm(model)
                rec = {"step": step, f"eval/{m['measure']}": m["value"], "eval/n": m["n"]}
            with path.open("a") as f:
                f.write(json.dumps(rec) + "\n")

        point(0)

        def hook(step: int, total: int) -> None:
            if step % every == 0 or step == total:
                point(step)

        return hook

    def after(self, model, before) -> dict[str, Any]:
        """The held-out summary: policies' before / after table (by difficulty, n, paired interval) and
        answers; reward models' measure against the baselines."""
        if self.is_rm:
            return {"kind": "reward_model", **self._rm(model)}
        from refeed.eval.heldout import compare

        if self.task is None:
            after_rows = policy_row_measure(model, self.tok, self.eval_rows, self.max_length)
            return compare_rows(before, after_rows, self.eval_rows)
        after = self._task_eval(model, self.ecfg.split, self.ecfg.prompts, "eval after")
        out = {"kind": "policy", "split": self.ecfg.split, "task": self.task.name, **compare(before, after)}
        b = {r["id"]: r for r in before.records}
        changed = [r for r in after.records if r["correct"] != b[r["id"]]["correct"]]
        same = [r for r in after.records if r["correct"] == b[r["id"]]["correct"]]
        out["answers"] = [{"prompt": r["prompt"], "expected": r["expected"], "before": b[r["id"]]["completion"],
                           "after": r["completion"], "before_correct": b[r["id"]]["correct"],
                           "after_correct": r["correct"]} for r in (changed + same)[: self.ecfg.examples]]
        return out


def answer_logps(model, tok, rows: list[dict], column: str, max_length: int = 512, batch_size: int = 16
                 ) -> list[tuple[float, int]]:
    """(sum of log-probs, token count) of each row's ``column`` answer after its prompt, under ``model``."""
    import torch

    from refeed.batch.collate import collate
    from refeed.batch.encode import encode_rows
    from refeed.batch.logprobs import completion_logps
    from refeed.objectives import BatchKind

    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    device = next(model.parameters()).device
    was, out = model.training, []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            part = [{"prompt": r["prompt"], "completion": r[column]} for r in rows[start:start + batch_size]]
            b = collate(encode_rows(tok, part, BatchKind.SFT, max_length), pad)
            lp = completion_logps(model, *(b[k].to(device) for k in ("input_ids", "attention_mask", "completion_mask")))
            out += list(zip(lp.sum().tolist(), lp.count().tolist(), strict=True))
    model.train(was)
    return out


def policy_row_measure(model, tok, rows: list[dict], max_length: int) -> list[float]:
    """Per eval row, a 0/1 (or real) score of the policy on custom data, comparable before and after:
    pairs: 1 when the chosen answer has the higher mean token log-prob; labelled rows: the mean token log-prob,
    signed by the label (desirable up, undesirable down); plain rows: the mean token log-prob."""
    if "chosen" in rows[0]:
        c, r = answer_logps(model, tok, rows, "chosen", max_length), answer_logps(model, tok, rows, "rejected", max_length)
        return [float(a / max(n, 1) > b / max(m, 1)) for (a, n), (b, m) in zip(c, r, strict=True)]
    lp = [a / max(n, 1) for a, n in answer_logps(model, tok, rows, "completion", max_length)]
    if "label" in rows[0]:
        return [v if bool(row["label"]) else -v for v, row in zip(lp, rows, strict=True)]
    return lp


def compare_rows(before: list[float], after: list[float], rows: list[dict]) -> dict[str, Any]:
    """The before / after table of ``policy_row_measure`` on eval rows, with the paired 95% interval."""
    from refeed.eval.heldout import paired_bootstrap

    measure = ("preference_accuracy" if "chosen" in rows[0] else
               "signed_mean_logp" if "label" in rows[0] else "mean_logp")
    lo, hi = paired_bootstrap(before, after)
    n = len(rows)
    return {"kind": "policy", "split": "eval rows", "task": measure, "n": n, "before": sum(before) / n,
            "after": sum(after) / n, "gain": (sum(after) - sum(before)) / n, "gain_ci": [lo, hi], "by_difficulty": {}}


def read_curve(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / CURVE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
