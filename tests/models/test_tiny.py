import pytest

from refeed.models import ModelNotFoundError, load, load_model, load_tokenizer
from refeed.models.tiny import IM_END


def test_tiny_model_loads_back_through_from_pretrained(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "llama"
    assert model.config.vocab_size == len(tok)
    assert tok.eos_token == IM_END and tok.pad_token_id is not None


def test_tokenizer_round_trips_text_and_renders_the_chat_template(tiny_model_dir):
    tok = load_tokenizer(tiny_model_dir)
    text = "What is 12+34? Reverse the word: table."
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)  # one token per character
    assert tok.decode(ids) == text
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_missing_directory_is_refused_with_a_clear_message(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        load_model(tmp_path / "empty")


def test_hub_id_offline_fails_naming_the_directory_option():
    with pytest.raises(ModelNotFoundError, match="local model directory"):
        load("some-org/some-model-that-is-not-cached")
