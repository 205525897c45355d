"""The built-in tiny model: a small Llama-style config and a character-level tokenizer built here.

    path = write_tiny_model("runs/tiny-base")       # config.json + tokenizer files + random weights
    model, tok = load("runs/tiny-base")               # the same from_pretrained path any model takes

Nothing is downloaded. The tokenizer is a real ``tokenizers`` WordLevel model over single characters
(printable ASCII plus newline) with Qwen-style chat markers as special tokens and a chat template,
wrapped as ``PreTrainedTokenizerFast``. Character level keeps the vocabulary at ~100 entries, so a
model of a few hundred thousand parameters can learn digit-level arithmetic on 2 CPU cores.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

IM_START, IM_END, PAD, UNK = "<|im_start|>", "<|im_end|>", "<|pad|>", "<|unk|>"
SPECIAL_TOKENS = (PAD, UNK, IM_START, IM_END)  # the built-in tokenizer's first ids, in this order

# Qwen/ChatML layout: <|im_start|>role\ncontent<|im_end|>\n ... ; the assistant turn ends with <|im_end|> (EOS).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TinyConfig:
    """Shape of the built-in model (Llama architecture)."""

    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 384
    max_position_embeddings: int = 256
    seed: int = 0


def build_tokenizer(
    special_tokens: tuple[str, ...] = (IM_START, IM_END),
    eos: str = IM_END,
    bos: str | None = None,
    chat_template: str | None = CHAT_TEMPLATE,
):
    """A character-level fast tokenizer (a ``PreTrainedTokenizerFast``).

    The defaults are the built-in model's (ChatML markers, ``<|im_end|>`` as EOS, its chat template);
    the architecture tests give it another family's markers and EOS, or no chat template at all (a
    base model), so every family is tested without downloading its tokenizer.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    if eos not in special_tokens or (bos is not None and bos not in special_tokens):
        raise ValueError(f"eos {eos!r} and bos {bos!r} must be among the special tokens {special_tokens}")
    chars = sorted(set(string.printable) - set("\t\r\x0b\x0c"))  # printable ASCII + space + newline
    vocab = {tok: i for i, tok in enumerate((PAD, UNK, *special_tokens))}
    for ch in chars:
        vocab[ch] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")  # one token per character
    core.decoder = decoders.Fuse()  # join characters back without spaces
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=bos,
        eos_token=eos,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=[t for t in special_tokens if t not in (eos, bos)],
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = chat_template
    tok.padding_side = "left"  # generation pads on the left; the training collator pads itself
    return tok


def tiny_llama_config(tokenizer, cfg: TinyConfig = TinyConfig()):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def write_tiny_model(path: str | Path, cfg: TinyConfig = TinyConfig()) -> Path:
    """Write a randomly initialised tiny model and its tokenizer to ``path`` and return it.

    The directory is a normal Hugging Face model directory: ``from_pretrained(path)`` loads it.
    """
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    path = Path(path)
    tok = build_tokenizer()
    torch.manual_seed(cfg.seed)
    model = AutoModelForCausalLM.from_config(tiny_llama_config(tok, cfg))
    model.generation_config = GenerationConfig(
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, max_new_tokens=32
    )
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
