"""The built-in ``small`` model: ~3.7M parameters, a 1,024-token context, a word-piece tokenizer learned here.

    tok = build_small_tokenizer(texts)                  # words frequent in ``texts`` + single characters
    path = write_small_model("runs/small-init", texts)  # config.json + tokenizer files + random weights
    model, tok = load(path)                             # the same from_pretrained path any model takes

The tokenizer is learned from the tasks' own text (prompts, critiques, rules, "try again"): every word that
occurs at least ``min_count`` times becomes one token (with and without its leading space), and everything
else falls back to single characters. So the fixed words of a turn ("The tens digit is too high.") cost a token
each, which keeps a five-turn feedback episode at ~130 tokens instead of ~400, while the answers of the
tasks (digits, random letter strings) stay one character per token: a byte-pair model trained on the same text
merges frequent pairs ("er", "th") inside random words too, so the letters of an answer to sort or reverse
would arrive fused and the model would first have to learn to spell its own tokens. Words of the tasks'
variable parts never reach ``min_count`` (a random 4-letter word is one of 456,976).

Same layout as ``refeed.models.tiny``: a ``tokenizers`` WordLevel model wrapped as ``PreTrainedTokenizerFast``
(``from_pretrained`` loads it, nothing is downloaded), ChatML markers as special tokens, and a chat template
that renders a system message and any number of turns.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from refeed.models.tiny import IM_END, IM_START, PAD, UNK, TinyConfig, tiny_llama_config

# ChatML with a system message when there is one, then every turn in order (user, assistant, user, ...).
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# 5 layers of width 256 (8 heads, 4 key-value heads), MLP 640: 3.7M parameters with a ~300-entry vocabulary.
SMALL_SHAPE = TinyConfig(hidden_size=256, num_hidden_layers=5, num_attention_heads=8, num_key_value_heads=4,
                         intermediate_size=640, max_position_embeddings=1024)
ROLES = ("system", "user", "assistant")
_WORD = re.compile(r"[A-Za-z]+")


def learn_words(texts: Iterable[str], min_count: int = 20, max_words: int = 400) -> list[str]:
    """Words of two letters or more occurring at least ``min_count`` times, most frequent first."""
    counts = Counter(w for t in texts for w in _WORD.findall(t) if len(w) > 1)
    counts.update({r: min_count for r in ROLES})  # the template's role names are words of every episode
    return [w for w, c in sorted(counts.items(), key=lambda wc: (-wc[1], wc[0])) if c >= min_count][:max_words]


def build_small_tokenizer(texts: Iterable[str], min_count: int = 20, max_words: int = 400):
    """A word-piece fast tokenizer learned from ``texts``: frequent words, else one token per character."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = learn_words(texts, min_count, max_words)
    chars = sorted(set(string.printable) - set("\t\r\x0b\x0c"))
    vocab = {tok: i for i, tok in enumerate((PAD, UNK, IM_START, IM_END))}
    for piece in [*chars, *words, *(" " + w for w in words)]:
        vocab.setdefault(piece, len(vocab))
    # A known word (optionally with its leading space) between word boundaries is one piece; any other
    # character is its own piece. Longest words first, so "letters" wins over "letter".
    alternation = "|".join(re.escape(w) for w in sorted(words, key=lambda w: (-len(w), w)))
    pattern = rf" ?\b(?:{alternation})\b|." if words else "."
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token=IM_END, pad_token=PAD, unk_token=UNK,
                                  additional_special_tokens=[IM_START], clean_up_tokenization_spaces=False)
    tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = "left"
    return tok


def write_small_model(path: str | Path, texts: Iterable[str], cfg: TinyConfig = SMALL_SHAPE,
                      min_count: int = 20) -> Path:
    """Write a randomly initialised small model and its tokenizer (learned from ``texts``) to ``path``."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    path = Path(path)
    tok = build_small_tokenizer(texts, min_count)
    torch.manual_seed(cfg.seed)
    model = AutoModelForCausalLM.from_config(tiny_llama_config(tok, cfg))
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                                               max_new_tokens=32)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
