"""The small base's tokenizer and shape: words of the tasks' text are one token, answers stay characters."""

import pytest

from refeed.models.small import SMALL_SHAPE, build_small_tokenizer, learn_words
from refeed.models.tiny import IM_END

TEXTS = ["Sort the letters: qdmat", "Letters 3-4 are out of order.", "What is 12+34?", "The tens digit is too high."] * 20


@pytest.fixture(scope="module")
def tok():
    return build_small_tokenizer([*TEXTS, "Sort the letters: xkcd"])


def test_frequent_words_become_tokens_and_rare_ones_do_not():
    words = learn_words(TEXTS + ["zzyzx"] * 3, min_count=20)
    assert {"Sort", "letters", "order", "digit", "system", "assistant"} <= set(words)
    assert "zzyzx" not in words and "qdmat" in words  # 20 copies of one prompt make its word frequent too


def test_words_are_one_token_answers_are_characters_and_text_round_trips(tok):
    text = "Sort the letters: kqbzw"
    pieces = tok.convert_ids_to_tokens(tok(text, add_special_tokens=False)["input_ids"])
    assert pieces == ["Sort", " the", " letters", ":", " ", "k", "q", "b", "z", "w"]
    # A known word inside a longer word is not a token: "the" in "thexq", "is" in "isle".
    assert tok.convert_ids_to_tokens(tok("thexq isle", add_special_tokens=False)["input_ids"])[:3] == ["t", "h", "e"]
    for s in ["What is -12+345?", "Letters 2 and 5 are not in the word.\nabc!", "~odd {text} 9"]:
        assert tok.decode(tok(s, add_special_tokens=False)["input_ids"]) == s
    assert tok.unk_token_id not in tok("~odd {text} 9", add_special_tokens=False)["input_ids"]


def test_chat_template_renders_a_system_message_and_several_turns(tok):
    msgs = [{"role": "system", "content": "End the answer with a period."},
            {"role": "user", "content": "Sort the letters: dcba"}, {"role": "assistant", "content": "abdc"},
            {"role": "user", "content": "Letters 3-4 are out of order."}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nEnd the answer with a period.<|im_end|>\n"
                    "<|im_start|>user\nSort the letters: dcba<|im_end|>\n<|im_start|>assistant\nabdc<|im_end|>\n"
                    "<|im_start|>user\nLetters 3-4 are out of order.<|im_end|>\n<|im_start|>assistant\n")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) < len(text) / 2  # words and markers are single tokens


def test_small_shape_has_3_to_5m_parameters_and_the_tokenizer_loads_back(tmp_path, tok):
    from transformers import AutoTokenizer

    cfg = SMALL_SHAPE  # the LlamaConfig that tiny_llama_config builds from it (counted by the slow test below)
    h, i, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    kv = h * cfg.num_key_value_heads // cfg.num_attention_heads
    params = n * (2 * h * h + 2 * h * kv + 3 * h * i + 2 * h) + len(tok) * h + h  # tied embeddings
    assert 3e6 <= params <= 5e6 and cfg.max_position_embeddings == 1024
    tok.save_pretrained(tmp_path / "tok")
    back = AutoTokenizer.from_pretrained(tmp_path / "tok")
    s = "Sort the letters: xkcd"
    assert back(s)["input_ids"] == tok(s)["input_ids"] and back.eos_token == IM_END
    assert back.chat_template == tok.chat_template
