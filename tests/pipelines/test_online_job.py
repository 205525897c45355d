"""``refeed train recipes/grpo.yaml``: the online loop as a product, through the CLI, on the tiny model.

The built-in task's prompts with its verifier (held-out table printed, rollouts and their outcome feedback in
the store, reusable offline); user rewards by import path, one of them TRL-style; prompts from a store and an
exact resume of a run cut inside a generation; bad input refused in one line. Budget: ~20 s in all.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from refeed.cli import main
from tests.pipelines.conftest import task_overrides

RECIPE = str(Path(__file__).resolve().parents[2] / "recipes" / "grpo.yaml")
TINY = ["online.num_generations=4", "online.max_new_tokens=4", "train.max_steps=2", "train.batch_size=2",
        "train.checkpoint_every=0", "data.sampling.prompts=8"]


def _train(*args: str):
    res = CliRunner().invoke(main, ["train", RECIPE, *args])
    return res


def _store(run: Path):
    from refeed.store import Store

    return Store(f"sqlite:///{run / 'feedback.db'}")


@pytest.mark.slow
def test_the_grpo_recipe_trains_prints_the_table_and_logs_every_rollout(warm_model_dir, tmp_path):
    from refeed.datasets import unpaired
    from refeed.store import provenance
    from refeed.store.tokens import rollouts

    runs = tmp_path / "runs"
    res = _train(f"model.path={warm_model_dir}", *task_overrides(), *TINY, "eval.prompts=8", "eval.every=1",
                 "eval.dev_prompts=4", "eval.max_new_tokens=4", f"run_root={runs}")
    assert res.exit_code == 0, res.output
    assert "held-out arithmetic test accuracy, before and after" in res.output and "95% CI" in res.output
    (run,) = runs.iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["train_steps"] == 2 and summary["heldout"]["n"] == 8 and summary["rollouts_logged"] == 2 * 2 * 4
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"entropy", "reward/mean", "rewards/verifier/mean", "clip/low", "frac_reward_zero_std",
            "completions/mean_length"} <= set(history[0]) and history[0]["entropy"] > 0
    assert len((run / "eval.jsonl").read_text().splitlines()) == 3 and (run / "online.png").is_file()
    store = _store(run)
    its = list(store.iter_interactions())
    assert len(its) == 16 and {i.metadata["origin"] for i in its} == {"online"}
    exact = rollouts(store, [i.id for i in its])
    assert len(exact) == 16 and {r.version for r in exact.values()} == {f"{run.name}@step0", f"{run.name}@step1"}
    assert all(r.token_ids_exact and len(r.logprobs) == len(r.completion_ids) <= 4 for r in exact.values())
    outcomes = [f for f in store.iter_feedback() if f.kind == "outcome"]
    assert len(outcomes) == 16 and {f.label for f in outcomes} <= {"pass", "fail"}
    assert {f.interaction_id for f in outcomes} == set(exact)
    r = provenance.get_run(store, summary["run_id"])
    (build,) = r["config"]["dataset_builds"]
    assert r["status"] == "finished" and sorted(provenance.members(store, build)) == sorted(f.id for f in outcomes)
    assert len(unpaired(store)) == 16  # the online data, built into offline rows


REWARDS = '''
def overlap(prompts, completions, target, **kwargs):
    """A user reward with a dataset column: characters of the target in the answer."""
    return [float(sum(ch in c for ch in t)) / len(t) for c, t in zip(completions, target)]


def short(completions, **kwargs):
    """A TRL-style reward function: only completions and **kwargs."""
    return [1.0 / (1 + len(c)) for c in completions]
'''


@pytest.mark.slow
def test_user_rewards_by_import_path_train_a_run_on_a_prompt_file(tiny_model_dir, tmp_path, monkeypatch):
    (tmp_path / "my_rewards_mod.py").write_text(textwrap.dedent(REWARDS))
    monkeypatch.syspath_prepend(str(tmp_path))
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Say {w}.", "target": w}) + "\n" for w in ("ab", "cd", "ef", "gh")))
    runs = tmp_path / "runs"
    res = _train("--data", str(data), f"model.path={tiny_model_dir}", *TINY, f"run_root={runs}", "eval.enabled=false",
                 "rewards=[{path: 'my_rewards_mod:overlap', weight: 2.0}, {path: 'my_rewards_mod:short'}]")
    assert res.exit_code == 0, res.output
    (run,) = runs.iterdir()
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 2 and (run / "model" / "config.json").is_file()
    h = history[0]
    assert 0 <= h["rewards/overlap/mean"] <= 1 and 0 < h["rewards/short/mean"] <= 1
    assert h["reward/mean"] == pytest.approx(2 * h["rewards/overlap/mean"] + h["rewards/short/mean"], rel=1e-6)


def length_reward(completions, **kwargs):
    """A signal that differs between any two different answers (so the resumed steps have advantages)."""
    return [sum(map(ord, c[0]["content"])) % 7 / 7 for c in completions]


@pytest.mark.slow
def test_prompts_from_a_store_and_an_exact_resume_inside_a_generation(warm_model_dir, tmp_path):
    """mu = 2, a checkpoint every step: resumed from checkpoint-3 (inside generation 1, mid-epoch: 4 prompts,
    2 a generation), the run logs the same step 4 as it did uninterrupted, and samples nothing new (the generation comes from the checkpoint)."""
    from refeed.pipelines.pretrain import TaskConfig
    from refeed.store import Store
    from tests.pipelines.conftest import TASK

    logged = Store(f"sqlite:///{tmp_path / 'users.db'}")
    train = TaskConfig(**TASK).build().examples("train")
    for e in [*train[:3], train[0], train[3]]:  # one asked twice
        logged.log(list(e.messages), "I think 7.")
    runs = tmp_path / "runs"
    args = [f"model.path={warm_model_dir}", *task_overrides(), f"data.from_store=sqlite:///{tmp_path / 'users.db'}",
            "online.num_generations=4", "online.max_new_tokens=4", "online.mu=2", "train.max_steps=4",
            "train.batch_size=2", "train.checkpoint_every=1", "train.keep_checkpoints=0", "eval.enabled=false",
            f"run_root={runs}", "name=cut", "train.lr=1e-2",
            "rewards=[{name: verifier}, {path: 'tests.pipelines.test_online_job:length_reward'}]"]
    assert (res := _train(*args)).exit_code == 0, res.output
    run = runs / "cut"
    full = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert json.loads((run / "summary.json").read_text())["rows"] == 4  # distinct last user messages: 2 generations an epoch
    assert "rewards/verifier/mean" in full[0] and full[3]["grad_norm"] > 0  # the second reward moves the policy
    assert (res := _train(*args, "--resume", str(run / "checkpoint-3"))).exit_code == 0, res.output
    rest = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rest] == [1, 2, 3, 4]
    for key in ("loss", "reward/mean", "generation", "entropy", "grad_norm"):
        assert rest[3][key] == pytest.approx(full[3][key], rel=1e-6, abs=1e-7), key
    assert len(list(_store(run).iter_interactions())) == 2 * 4 * 2  # generations 0 and 1, logged once


@pytest.mark.parametrize("args, message", [
    (["rewards=[{path: 'no_such_pkg.rewards:fn'}]"], "reward path 'no_such_pkg.rewards:fn': no module named 'no_such_pkg'"),
    (["rewards=[{path: 'json:no_such_fn'}]"], "reward path 'json:no_such_fn': 'json' has no attribute 'no_such_fn'"),
    (["rewards=[{name: judgy}]"], "unknown reward 'judgy'"),
    (["online.max_new_tokens=100000"], "online.max_new_tokens=100000 exceeds the model's context of 256 tokens"),
    (["--data", "QUESTIONS"], "has no 'prompt' column, the one the online loop samples answers to (it has: question)"),
    (["generator.backend=sglang"], "generator.backend must be one of transformers, openai, vllm, got 'sglang'"),
    (["generator.backend=openai"], "generator.backend=openai needs generator.url"),
    (["generator.url=http://x/v1"], "generator.url / model / api_key_env are for backend=openai, not 'transformers'"),
    (["generator.backend=vllm"], "generator.backend=vllm: VLLMGenerator needs vLLM, which is not installed"),
])
def test_bad_online_input_is_one_line_before_any_work(args, message, tiny_model_dir, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": "What is 1+1?"}) + "\n")
    args = [str(questions) if a == "QUESTIONS" else a for a in args]
    res = _train(f"model.path={tiny_model_dir}", *TINY, f"run_root={tmp_path / 'runs'}", *args)
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split()), res.output
    assert not list(tmp_path.glob("runs/*/metrics.jsonl"))  # nothing was trained


@pytest.mark.slow
def test_a_reward_that_raises_names_the_function_and_the_prompt(tiny_model_dir, tmp_path):
    res = _train(f"model.path={tiny_model_dir}", *TINY, "train.max_steps=1", "eval.enabled=false",
                 f"run_root={tmp_path / 'runs'}", "rewards=[{path: 'json:loads'}]")
    assert res.exit_code == 1, res.output
    assert "reward function 'loads' failed on prompt 0: TypeError" in " ".join(res.output.split()), res.output


@pytest.mark.slow
def test_rollouts_from_an_openai_compatible_endpoint_train_a_run(tiny_model_dir, tmp_path, monkeypatch):
    """generator.backend=openai against a real ``refeed serve``: its exact token ids and sampling log-probs are
    what the loss uses, the rollouts keep the endpoint's model as their version (this run does not update it),
    and the server logged every request."""
    from refeed.store.tokens import rollouts
    from tests.api.conftest import free_port, make_keys, start_server

    served = f"sqlite:///{tmp_path / 'served.db'}"
    monkeypatch.setenv("REFEED_TEST_ENDPOINT_KEY", make_keys(served)["ingest"])
    port = free_port()
    proc = start_server(tiny_model_dir, served, port)
    try:
        runs = tmp_path / "runs"
        res = _train(f"model.path={tiny_model_dir}", *TINY, f"run_root={runs}", "eval.enabled=false",
                     "generator.backend=openai", f"generator.url=http://127.0.0.1:{port}/v1", "generator.model=tiny",
                     "generator.api_key_env=REFEED_TEST_ENDPOINT_KEY")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert res.exit_code == 0, res.output
    (run,) = runs.iterdir()
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 2 and all(h["entropy"] > 0 for h in history)
    store = _store(run)
    exact = rollouts(store, [i.id for i in store.iter_interactions()])
    assert len(exact) == 2 * 2 * 4 and all(r.token_ids_exact and len(r.logprobs) == len(r.completion_ids) <= 4
                                           for r in exact.values())
    (version,) = {r.version for r in exact.values()}  # the model the server answered with, for every rollout:
    assert version == next(iter(exact.values())).model and "@step" not in version  # its weights never moved
    from refeed.store import Store

    server_store = Store(served)
    assert sum(1 for _ in server_store.iter_interactions()) >= 2 * 2  # a request per prompt, logged by the server


def test_logged_prompts_are_the_distinct_last_user_messages(tmp_path):
    from refeed.datasets.prompts import logged_prompts
    from refeed.store import Store

    store = Store(f"sqlite:///{tmp_path / 'f.db'}")
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    store.log([*chat, {"role": "user", "content": "What is 2+2?"}], "4")
    store.log([{"role": "user", "content": "What is 2+2?"}], "5")  # the same last user message
    store.log([{"role": "user", "content": "Name a colour."}], "red", metadata={"origin": "online"})  # a rollout
    store.log([{"role": "system", "content": "Be brief."}], "ok")  # no user message
    rows = logged_prompts(store)
    assert [r["prompt"] for r in rows] == [[*chat, {"role": "user", "content": "What is 2+2?"}]]
    assert len(rows[0]["source_ids"]) == 1


def test_prompts_that_are_the_tasks_get_its_answer_for_the_verifier():
    from refeed.pipelines.online_job import _rewards, _with_answers
    from refeed.pipelines.pretrain import TaskConfig

    task = TaskConfig(name="arithmetic", levels=(1,), train_size=20, dev_size=5, test_size=5).build()
    e = task.examples("dev")[0]
    rows = _with_answers([{"prompt": list(e.messages)}, {"prompt": "Tell me a joke."}], task)
    assert [r["answer"] for r in rows] == [e.answer, None]
    (verifier,), weights = _rewards([{"name": "verifier"}], "arithmetic")  # the recipe default
    got = verifier(prompts=[r["prompt"] for r in rows] * 2, completions=[e.answer, "1", "x", "y"],
                   answer=[rows[0]["answer"], rows[0]["answer"], None, None])
    assert got == [1.0, float(e.answer == "1"), None, None]


@pytest.mark.slow
def test_the_demo_runs_the_online_path_with_grpo(warm_model_dir, tmp_path):
    res = CliRunner().invoke(main, ["demo", "objective.name=grpo", "--model", str(warm_model_dir), *task_overrides(),
                                    "train.max_steps=2", "train.batch_size=2", "sampling.prompts=4",
                                    "sampling.max_new_tokens=4", f"run_root={tmp_path}", "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.output.strip().splitlines()[-1])
    assert s["objective"] == "grpo" and s["train_steps"] == 2 and s["rollouts_logged"] == 2 * 2 * 8
    assert s["heldout_examples"] == 40 and "accuracy_gain" in s and (Path(s["run_dir"]) / "report.html").is_file()
