"""Your own model, for real: tiny Llama, Qwen2, Mistral, Gemma, Phi-3 and GPT-2 models (the real
transformers classes, random init, ~100K parameters) saved to disk and loaded back through
``from_pretrained``, each with its family's chat template quirk (``refeed.models.templates``) and the
in-project character tokenizer given the family's markers and EOS (nothing is downloaded). GPT-2 is
the base model: no chat template, trained with ``model.chat_template=chatml``.

Each family goes through what a user does with it: ``refeed train`` (``run_train``: full DPO and
LoRA SFT, 2 steps each, and a Bradley-Terry score head), sampling (``refeed.models.generate.sample``)
and serving (the FastAPI app ``refeed serve`` runs, one chat completion, logged in the store).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime

import pytest
import torch

from refeed.config import ConfigError
from refeed.models import load
from refeed.models.templates import TEMPLATES, require_chat_template, resolve_chat_template
from refeed.models.tiny import build_tokenizer


@dataclass(frozen=True)
class Family:
    template: str | None  # a name in TEMPLATES; None: a base model without a chat template
    specials: tuple[str, ...]  # the family's markers, special tokens of the tiny tokenizer
    eos: str
    bos: str | None = None


FAMILIES = {
    "llama": Family(
        "llama3",
        ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
        "<|eot_id|>",
        "<|begin_of_text|>",
    ),
    "qwen2": Family("reasoning", ("<|im_start|>", "<|im_end|>"), "<|im_end|>"),
    "mistral": Family("mistral", ("<s>", "</s>", "[INST]", "[/INST]"), "</s>", "<s>"),
    "gemma": Family("gemma", ("<bos>", "<start_of_turn>", "<end_of_turn>"), "<end_of_turn>", "<bos>"),
    "phi3": Family("phi3", ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>"), "<|end|>"),
    "gpt2": Family(None, ("<|endoftext|>",), "<|endoftext|>"),
}
ARCHS = sorted(FAMILIES)

CHAT = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Hi, who are you?"},
    {"role": "assistant", "content": "<think>\nThe user greets me.\n</think>\nI am a tiny model."},
    {"role": "user", "content": "What is 2+3?"},
]


def _tokenizer(arch: str):
    f = FAMILIES[arch]
    template = TEMPLATES[f.template] if f.template else None
    return build_tokenizer(f.specials, eos=f.eos, bos=f.bos, chat_template=template)


def _config(arch: str, tok):
    import transformers as tf

    ids = dict(
        vocab_size=len(tok),
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
    )
    if arch == "gpt2":
        return tf.GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=256, **ids)
    shape = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=128, max_position_embeddings=256)  # fmt: skip
    shape |= {"gemma": dict(num_key_value_heads=1, head_dim=16), "mistral": dict(sliding_window=64)}.get(
        arch, {}
    )
    cls = {"llama": tf.LlamaConfig, "qwen2": tf.Qwen2Config, "mistral": tf.MistralConfig,
           "gemma": tf.GemmaConfig, "phi3": tf.Phi3Config}[arch]  # fmt: skip
    return cls(**ids, **shape)


class _BaseDirs(dict):
    """arch -> a saved model directory (config.json, weights, tokenizer files), written on first use."""

    def __init__(self, root):
        super().__init__()
        self.root = root

    def __missing__(self, arch: str):
        from transformers import AutoModelForCausalLM, GenerationConfig

        tok = _tokenizer(arch)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(_config(arch, tok))
        model.generation_config = GenerationConfig(
            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
        )
        path = self.root / arch
        model.save_pretrained(path)
        tok.save_pretrained(path)
        self[arch] = path
        return path


@pytest.fixture(scope="module")
def base_dirs(tmp_path_factory):
    """One saved model per family, shared by the module (the fast tests write only the two they use)."""
    return _BaseDirs(tmp_path_factory.mktemp("base"))


def _rows(n: int = 4) -> list[dict]:
    """Conversational rows (TRL columns) with a system turn and a past answer that holds reasoning; not
    the built-in task's prompts, so ``refeed train`` runs no held-out task evaluation on them."""
    return [
        {
            "prompt": CHAT[:3] + [{"role": "user", "content": f"Add 3 to {i}."}],
            "chosen": f"{i + 3}.",
            "rejected": "I do not know.",
            "completion": f"It is {i + 3}.",
        }  # fmt: skip
        for i in range(n)
    ]


def _train(base, run_root, name: str, objective: str, data, **model):
    from refeed.pipelines.train_job import DataSection, ModelSection, TrainJobConfig, run_train
    from refeed.train.loop import TrainConfig

    cfg = TrainJobConfig(
        model=ModelSection(path=str(base), **model),
        data=DataSection(path=str(data)),
        objective={"name": objective},
        train=TrainConfig(max_steps=2, batch_size=2, lr=1e-3, device="cpu", warmup_ratio=0.0, max_length=160),
        run_root=str(run_root),
        name=name,
    )
    return run_train(cfg)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    return path


def _chat_option(arch: str) -> dict:
    return {} if FAMILIES[arch].template else {"chat_template": "chatml"}  # the base model needs one


# ---- templates and configuration: fast -------------------------------------------------------------


def test_family_templates_render_their_quirks():
    def render(arch, messages=CHAT):
        return _tokenizer(arch).apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    today = datetime.now().strftime("%d %b %Y")
    assert f"Today Date: {today}" in render("llama")  # injected at render time
    assert render("llama").startswith("<|begin_of_text|>")
    qwen = render("qwen2")
    assert "The user greets me" not in qwen and "<|im_start|>assistant\nI am a tiny model.<|im_end|>" in qwen
    gemma = render("gemma")
    assert "system" not in gemma and "<start_of_turn>user\nAnswer briefly.\n\nHi, who are you?" in gemma
    assert "<start_of_turn>model\n" in gemma
    with pytest.raises(Exception, match="alternate"):
        render("gemma", [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    mistral = render("mistral")
    assert mistral.startswith("<s>[INST] Hi, who are you?[/INST]")  # system text joins the last user turn
    assert mistral.endswith("[INST] Answer briefly.\n\nWhat is 2+3?[/INST]")
    assert render("phi3").endswith("<|user|>\nWhat is 2+3?<|end|>\n<|assistant|>\n")
    with pytest.raises(ConfigError, match="no chat template.*model.chat_template=chatml"):
        require_chat_template(_tokenizer("gpt2"), "gpt2-base")


def test_chat_template_option_takes_a_name_or_a_file(tmp_path):
    assert resolve_chat_template("chatml") == TEMPLATES["chatml"]
    path = tmp_path / "t.jinja"
    path.write_text("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}")
    tok = _tokenizer("gpt2")
    tok.chat_template = resolve_chat_template(str(path))
    assert tok.apply_chat_template(CHAT[1:2], tokenize=False) == "user: Hi, who are you?\n"
    with pytest.raises(ConfigError, match="neither a named template.*chatml"):
        resolve_chat_template("chatmlx")


def test_lora_targets_follow_the_architecture(base_dirs):
    from refeed.models.loading import add_lora, lora_targets

    gpt2 = load(base_dirs["gpt2"])[0]
    assert lora_targets(gpt2) is None  # peft's own default for gpt2: c_attn
    with pytest.raises(
        ValueError, match=r"\['k_proj', 'o_proj', 'q_proj', 'v_proj'\] not in this gpt2.*c_attn"
    ):
        lora_targets(gpt2, ["q_proj", "k_proj", "v_proj", "o_proj"])
    assert lora_targets(gpt2, ["attn.c_attn", "c_fc"]) == ["attn.c_attn", "c_fc"]  # path suffixes, as peft
    assert lora_targets(load(base_dirs["phi3"])[0]) == "all-linear"  # peft has no default for Phi-3
    wrapped = add_lora(gpt2, r=4)
    names = {n for n, p in wrapped.named_parameters() if p.requires_grad}
    assert names and all("lora_" in n for n in names) and any("c_attn" in n for n in names)


def test_conversational_data_on_a_base_model_names_the_option(base_dirs, data_file, tmp_path):
    with pytest.raises(ConfigError, match="has no chat template.*model.chat_template=chatml"):
        _train(base_dirs["gpt2"], tmp_path, "x", "sft", data_file)
    assert not (tmp_path / "x").exists()  # refused before the run directory is written


def test_cli_overrides_set_the_template_and_the_lora_targets():
    from refeed.cli._common import load_config
    from refeed.pipelines.train_job import TrainJobConfig

    cfg = load_config(
        TrainJobConfig, None, ["model.chat_template=chatml", "model.lora.target_modules=all-linear"]
    )
    assert cfg.model.chat_template == "chatml" and cfg.model.lora.target_modules == "all-linear"
    cfg = load_config(TrainJobConfig, None, ["model.lora.target_modules=[c_attn,c_proj]"])
    assert cfg.model.lora.target_modules == ["c_attn", "c_proj"]


@pytest.mark.slow
def test_plain_text_rows_train_a_base_model_without_a_template(base_dirs, tmp_path):
    data = tmp_path / "text.jsonl"
    data.write_text(
        "".join(json.dumps({"prompt": f"{i}+3=", "completion": f"{i + 3}"}) + "\n" for i in range(4))
    )
    summary = _train(base_dirs["gpt2"], tmp_path, "text", "sft", data)
    assert summary["train_steps"] == 2 and math.isfinite(summary["final_loss"])


# ---- each family through training, sampling, serving and a score head -----------------------------


@pytest.fixture(scope="module")
def trained(base_dirs, data_file, tmp_path_factory):
    """``trained(arch)``: full DPO and LoRA SFT runs of that family (2 steps each), run once."""
    from refeed.pipelines.train_job import LoraSection

    done: dict[str, dict] = {}
    root = tmp_path_factory.mktemp("runs")

    def run(arch: str) -> dict:
        if arch not in done:
            chat = _chat_option(arch)
            done[arch] = {
                "full": _train(base_dirs[arch], root, f"{arch}-dpo", "dpo", data_file, **chat),
                "lora": _train(
                    base_dirs[arch],
                    root,
                    f"{arch}-lora",
                    "sft",
                    data_file,
                    lora=LoraSection(r=4, alpha=8),
                    **chat,
                ),  # fmt: skip
            }
        return done[arch]

    return run


def _weights(path) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in load(path)[0].state_dict().items()}


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_full_and_lora_training(arch, base_dirs, trained):
    from refeed.pipelines.train_job import LoraSection

    runs = trained(arch)
    before = _weights(base_dirs[arch])
    for kind, summary in runs.items():
        assert summary["train_steps"] == 2 and math.isfinite(summary["final_loss"]), (kind, summary)
        after = _weights(f"{summary['run_dir']}/model")  # merged LoRA weights: a plain model directory
        assert after.keys() == before.keys()
        changed = [k for k in before if not torch.equal(before[k], after[k])]
        assert changed, f"{arch} {kind}: no weight changed"
        if kind == "lora":  # adapters on the attention only (or all-linear): embeddings stay put
            assert not any("embed" in k or "wte" in k for k in changed), changed
    assert LoraSection().target_modules == "auto"


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_sampling(arch, base_dirs):
    from refeed.models.generate import sample

    model, tok = load(base_dirs[arch], chat_template=_chat_option(arch).get("chat_template", ""))
    out = sample(model, tok, [CHAT, CHAT[1:2]], n=2, temperature=1.0, max_new_tokens=6, seed=0)
    assert [len(o) for o in out] == [2, 2] and all(isinstance(t, str) for o in out for t in o)
    assert out == sample(model, tok, [CHAT, CHAT[1:2]], n=2, temperature=1.0, max_new_tokens=6, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_serving_the_trained_model(arch, trained, tmp_path):
    """The app ``refeed serve --model RUN/model --local`` runs, in process: a base model trained with
    ``model.chat_template=chatml`` has saved that template, so it serves as a chat model."""
    from fastapi.testclient import TestClient

    from refeed.api import ServeSettings, create_app

    model_dir = f"{trained(arch)['lora']['run_dir']}/model"
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    app = create_app(ServeSettings(store_url=url, model=model_dir, model_name=arch, local=True, max_tokens=8))
    with TestClient(app, base_url="http://localhost") as client:  # a loopback Host: the DNS-rebinding guard refuses testserver
        resp = client.post(
            "/v1/chat/completions", json={"model": arch, "messages": CHAT, "max_tokens": 6, "seed": 1}
        )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert isinstance(body["choices"][0]["message"]["content"], str)
    assert 0 < body["usage"]["completion_tokens"] <= 6
    logged = app.state.store.get_interaction(resp.headers["x-refeed-interaction-id"])
    assert logged.messages == CHAT and logged.completion == body["choices"][0]["message"]["content"]


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_score_head_bradley_terry(arch, base_dirs, data_file, tmp_path):
    from refeed.models.score_head import ScoreModel

    summary = _train(base_dirs[arch], tmp_path, "rm", "bradley_terry", data_file, **_chat_option(arch))
    assert summary["train_steps"] == 2 and math.isfinite(summary["final_loss"])
    rm = ScoreModel.from_pretrained(f"{summary['run_dir']}/model")
    assert rm.score_head.weight.abs().sum() > 0  # the head starts at zero: the steps moved it
    tok = load(f"{summary['run_dir']}/model")[1]
    ids = tok("It is 5.", return_tensors="pt", add_special_tokens=False)["input_ids"]
    values, _ = rm(ids, torch.ones_like(ids), torch.ones_like(ids, dtype=torch.bool))
    assert values.shape == (1, ids.shape[1], 1) and torch.isfinite(values).all()


def test_serving_a_base_model_needs_a_chat_template_and_takes_the_option(base_dirs, tmp_path):
    """``refeed serve --model BASE --chat-template chatml``: a model without a template is refused at start,
    naming the option; with it, chat requests are formatted by the named template and served."""
    from fastapi.testclient import TestClient

    from refeed.api import ServeSettings, create_app

    url = f"sqlite:///{tmp_path / 'serve.db'}"
    with pytest.raises(ValueError, match="no chat template.*--chat-template chatml"):
        create_app(ServeSettings(store_url=url, model=base_dirs["gpt2"], local=True))
    app = create_app(ServeSettings(store_url=url, model=base_dirs["gpt2"], local=True, chat_template="chatml"))
    assert app.state.backend.gen.tok.chat_template == TEMPLATES["chatml"]
    with TestClient(app, base_url="http://localhost") as client:
        resp = client.post("/v1/chat/completions", json={"messages": CHAT[1:2], "max_tokens": 4, "seed": 1})
    assert resp.status_code == 200, resp.text
