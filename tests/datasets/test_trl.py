"""What `refeed build` writes trains unchanged in TRL's four trainers, and every builder's row is
conversational in every column (TRL decides per row, from one column, and fails on a mixed row).

The trainers run 2 steps each on the built-in tiny model, loaded through ``from_pretrained`` like any model.
"""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner

from refeed.cli import main
from refeed.datasets import BUILDERS
from refeed.store.trl import ANSWERS, is_chat
from tests.datasets.conftest import ask


def _fill(store):
    """Preferences, thumbs, a ranking, an edit, spans, critiques, follow-ups, signals: every builder has rows."""
    for n in range(6):
        good, bad, meh = ask(store, f"{n}+1?", str(n + 1), str(n + 2), "idk")
        store.feedback(good, "preference", rejected=bad)
        store.feedback(good, "thumbs", up=True)
        store.feedback(bad, "thumbs", up=False)
        store.feedback(None, "ranking", ranking=[good, meh, bad])
        store.feedback(meh, "edit", text=str(n + 1))
        store.feedback(bad, "span", start=0, end=1, category="wrong")
        store.feedback(bad, "critique", text="off by one")
        store.feedback(bad, "followup", text="no, that's wrong", label="negative")
        store.feedback(good, "signal", signal="copy", propensity=0.5, source="implicit")
        store.feedback(good, "outcome", passed=True, source="rule")
    store.feedback(None, "principle", text="Digits only.", applies_when="arithmetic")


def test_every_builder_writes_conversational_rows_in_every_column(store):
    _fill(store)
    for name, build in BUILDERS.items():
        ds = build(store)
        assert ds.num_rows, name
        for row in ds:
            if not is_chat(row.get("prompt")):
                continue
            for c in ANSWERS:
                if c in row:
                    assert is_chat(row[c]) and [m["role"] for m in row[c]] == ["assistant"], (name, c, row[c])
            for answer in row.get("completions") or []:
                assert is_chat(answer) and [m["role"] for m in answer] == ["assistant"], (name, answer)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """`refeed build pairs|unpaired|sft` output files, as a user makes them."""
    from refeed.store import Store

    tmp = tmp_path_factory.mktemp("trl")
    url = f"sqlite:///{tmp / 'f.db'}"
    store = Store(url)
    _fill(store)
    store.close()
    out = {}
    for kind, suffix in (("pairs", "parquet"), ("unpaired", "jsonl"), ("sft", "parquet")):
        out[kind] = tmp / f"{kind}.{suffix}"
        res = CliRunner().invoke(main, ["build", kind, "--out", str(out[kind]), "--url", url])
        assert res.exit_code == 0, res.output
    return out


def _trainer(name, model_dir, data, out_dir):
    trl = pytest.importorskip("trl", reason="TRL is in the dev extra: pip install -e '.[dev]'")
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    train = load_dataset("parquet" if data.suffix == ".parquet" else "json", data_files=str(data), split="train")
    common = dict(output_dir=str(out_dir), max_steps=2, per_device_train_batch_size=2, report_to=[], use_cpu=True,
                  save_strategy="no", logging_steps=1, max_length=64, disable_tqdm=True)
    tok = AutoTokenizer.from_pretrained(model_dir)
    if name == "RewardTrainer":
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
        return trl.RewardTrainer(model=model, args=trl.RewardConfig(**common), train_dataset=train, processing_class=tok)
    trainer, config = {"DPOTrainer": (trl.DPOTrainer, trl.DPOConfig), "KTOTrainer": (trl.KTOTrainer, trl.KTOConfig),
                       "SFTTrainer": (trl.SFTTrainer, trl.SFTConfig)}[name]
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    return trainer(model=model, args=config(**common), train_dataset=train, processing_class=tok)


@pytest.fixture
def fresh_accelerate():
    """TRL's Trainer leaves accelerate's process-wide state behind, and a later Accelerator with other settings
    (refeed's loop, in the next test) is refused; clear it after each trainer, as accelerate's own tests do."""
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


@pytest.mark.slow
@pytest.mark.parametrize("name, kind", [("DPOTrainer", "pairs"), ("KTOTrainer", "unpaired"), ("SFTTrainer", "sft"),
                                        ("RewardTrainer", "pairs")])
def test_trl_trainers_train_on_refeed_builds_unchanged(name, kind, built, tiny_model_dir, tmp_path, fresh_accelerate):
    out = _trainer(name, tiny_model_dir, built[kind], tmp_path).train()
    assert out.global_step == 2 and math.isfinite(out.training_loss)


def test_the_training_loader_reads_every_trl_type(tmp_path):
    """`refeed train --data` takes trl-lib's implicit-prompt files and conversational LM rows as they are."""
    import json

    from refeed.config import ConfigError
    from refeed.pipelines.train_job import load_rows

    q = {"role": "user", "content": "2+2?"}
    rows = [{"chosen": [q, {"role": "assistant", "content": "4"}], "rejected": [q, {"role": "assistant", "content": "5"}]}]
    f = tmp_path / "hh.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert load_rows(f) == [{"prompt": [q], "chosen": [{"role": "assistant", "content": "4"}],
                             "rejected": [{"role": "assistant", "content": "5"}]}]
    f.write_text(json.dumps({"messages": [q, {"role": "assistant", "content": "4"}]}) + "\n")
    assert load_rows(f) == [{"prompt": [q], "completion": [{"role": "assistant", "content": "4"}]}]
    f.write_text(json.dumps({"prompt": [q], "completion": [{"role": "assistant", "content": "4"}] * 2}) + "\n")
    with pytest.raises(ConfigError, match="row 0: field 'completion': an answer must be one assistant message"):
        load_rows(f)


@pytest.mark.slow
@pytest.mark.parametrize("recipe, kind", [("dpo", "pairs"), ("kto", "unpaired")])
def test_refeeds_own_loop_trains_on_the_same_files(recipe, kind, built, tiny_model_dir, tmp_path):
    res = CliRunner().invoke(main, ["train", f"recipes/{recipe}.yaml", "--data", str(built[kind]), "--model",
                                    str(tiny_model_dir), "train.max_steps=2", "train.batch_size=2",
                                    f"run_root={tmp_path}"])
    assert res.exit_code == 0, res.output
