"""Every objective gets rows of its kind from the simulated user, through the store and the builders (fast,
no model: hand-written answers stand in for samples). The slow end-to-end runs are in test_recipes.py."""

import pytest

from refeed.objectives import OBJECTIVES, build
from refeed.pipelines import simulate as sim
from refeed.tasks import get_task, oracle
from refeed.types import Interaction


def _groups(task, n=12):
    out = []
    for ex in task.examples("train")[:n]:
        a = ex.answer
        if task.name == "arithmetic":
            texts = [a, str(int(a) + 10), str(int(a) + 111), "??"]
        else:
            texts = [a, a[0] + ("q" if a[1] != "q" else "x") + a[2:], a[::-1] if a != a[::-1] else a + "x", "..."]
        out.append((ex, [Interaction(list(ex.messages), t, model="m") for t in texts]))
    return out


@pytest.mark.parametrize("task_name", ["arithmetic", "reverse"])
def test_each_recipe_gets_rows_of_its_kind_from_the_simulated_user(task_name, tmp_path):
    """One store per plan (only the kinds that plan asks for), rows out of its builder, columns checked
    against every objective that uses it, with the recipe's own objective settings."""
    from refeed.batch.encode import check_columns
    from refeed.store import Store
    from tests.pipelines.test_recipes import RECIPES, _load

    task = get_task(task_name, sizes={"train": 40, "dev": 5, "test": 5})
    by_plan: dict[str, list] = {}
    for name in sorted(OBJECTIVES):
        cfg = _load(RECIPES / f"{name}.yaml")
        objective = build(name, {k: v for k, v in cfg.objective.items() if k != "name"})
        if objective.needs.rewards:  # online objectives sample their answers; no simulated rows
            continue
        by_plan.setdefault(sim.plan_for(objective, cfg.data.feedback), []).append(objective)
    by_plan["observed_signals"] = [build("binary_rm", {})]  # the naive baseline of causal_rm, same data
    assert set(by_plan) == set(sim.PLANS)  # every plan serves some recipe
    for plan, objectives in by_plan.items():
        p = sim.PLANS[plan]
        if p.builder in ("principles", "followups"):  # rows made with the model: test_recipes, test_oracle
            continue
        store = Store(f"sqlite:///{tmp_path / plan}.db")
        items = []
        for ex, its in _groups(task):
            items += [*its, *oracle.judge(task, ex, its, p.kinds, seed=0, preference_by="grade")]
        store.write_batch(items)
        rows = sim.build_rows(store, plan).to_list()
        assert rows, plan
        assert all(r["source_ids"] for r in rows)  # every row says which feedback it came from
        for objective in objectives:
            check_columns(objective, set(rows[0]))  # the columns the objective trains on


def test_plans_follow_capabilities_and_refuse_unknown_names():
    want = {"dpo": "preferences", "curry_dpo": "curriculum", "c3po": "principles", "plackett_luce": "rankings",
            "kto": "thumbs", "causal_rm": "signals", "ordinal": "levels", "fine_grained": "spans", "sft": "edits"}
    assert {n: sim.plan_for(build(n, {})) for n in want} == want
    with pytest.raises(ValueError, match="data.feedback must be one of"):
        sim.plan_for(build("dpo", {}), "nope")


def test_recipes_without_data_name_a_plan_that_exists():
    """flr's recipe picks the follow-ups plan (FLR is a pair objective whose pairs come from follow-ups)."""
    from tests.pipelines.test_recipes import RECIPES, _load

    for path in sorted(RECIPES.glob("*.yaml")):
        cfg = _load(path)
        plan = sim.plan_for(build(path.stem, {k: v for k, v in cfg.objective.items() if k != "name"}), cfg.data.feedback)
        assert plan in sim.PLANS
    assert _load(RECIPES / "flr.yaml").data.feedback == "followups"


def test_the_tiny_model_on_foreign_data_warns_and_names_model_path():
    from refeed.pipelines.train_job import ModelSection, TrainJobConfig, foreign_data_warning

    cfg = TrainJobConfig()
    foreign = [{"prompt": [{"role": "user", "content": "Write a haiku."}], "completion": "..."}] * 4
    own = [{"prompt": list(e.messages), "completion": e.answer} for e in cfg.pretrain.task.build().examples("dev")[:4]]
    assert "model.path=" in foreign_data_warning(cfg, foreign)
    assert foreign_data_warning(cfg, own) is None
    assert foreign_data_warning(TrainJobConfig(model=ModelSection(path="some/model")), foreign) is None


def test_signals_are_biased_so_that_a_naive_estimate_misses_and_causal_rm_recovers_the_truth(tmp_path):
    """The simulated bias is checked against the naive baseline on the same logs (ACCEPTANCE.md): a constant
    reward fitted by naive BCE on observed reactions vs by CausalRM's loss (IPS + noise correction, the
    simulation's e01 / e10), both from `refeed build causal` rows, against the true share of right answers."""
    import torch

    from refeed.objectives.causal_rm import corrected_bce
    from refeed.store import Store

    task = get_task("arithmetic", sizes={"train": 400, "dev": 5, "test": 5})
    store = Store(f"sqlite:///{tmp_path / 'logs.db'}")
    items, truth = [], []
    for ex, its in _groups(task, 400):
        items += [*its, *oracle.signals(task, ex, its, seed=0)]
        truth += [task.verify(ex, it.completion).correct for it in its]
    store.write_batch(items)
    rows = sim.build_rows(store, "signals").to_list()
    assert len(rows) == len(truth)
    obs = torch.tensor([float(r["observed"]) for r in rows])
    y = torch.tensor([float(r["label"]) for r in rows])
    w = obs / torch.tensor([r["propensity"] for r in rows]).clamp(min=0.1)
    naive = (y * obs).sum() / obs.sum()
    m = oracle.SignalModel()
    grid = torch.linspace(-6, 6, 2401)
    l1, l0 = corrected_bce(grid[:, None], m.e01, m.e10)  # (G, 1) each
    loss = (w * (y * l1 + (1 - y) * l0)).mean(-1)  # (G,)
    causal = torch.sigmoid(grid[loss.argmin()])
    p_true = sum(truth) / len(truth)
    assert abs(naive - p_true) > 0.1, (naive, p_true)  # the selection bias and noise are real
    assert abs(causal - p_true) < 0.05, (causal, p_true)
