"""Chat templates written for refeed, one per model family, with the quirks that trip training code.

    tok.chat_template = resolve_chat_template("chatml")          # a named template
    tok.chat_template = resolve_chat_template("my/template.jinja")   # or a Jinja file of your own
    require_chat_template(tok, "runs/base/model")                # a clear error before any encoding

A base model (GPT-2, a pretrained-only checkpoint) ships no chat template, and conversational rows
need one: ``model.chat_template=chatml`` (or a file path) sets it, and ``refeed train`` saves it with
the trained model, so the result serves as a chat model. The named templates mimic each family's
layout in this project's own Jinja (the markers are plain strings; on a tokenizer without them as
special tokens they are tokenized as text):

    chatml     <|im_start|>role\\n...<|im_end|>, the common denominator (Qwen, many fine-tunes)
    llama3     a system header always rendered, with a knowledge cut-off and TODAY's date injected
               (strftime_now), so the same prompt tokenizes differently on different days
    reasoning  ChatML whose past assistant turns lose their <think>...</think> text (QwQ / Qwen3 /
               DeepSeek-R1): the prompt is not the concatenation of the turns as they were produced
    gemma      no system role: the system text is merged into the first user turn; roles must
               alternate; the assistant role is called "model"
    mistral    [INST] ... [/INST]; the system text joins the LAST user turn; there is no separate
               generation prompt (add_generation_prompt changes nothing)
    phi3       <|role|>\\n...<|end|>
"""

from __future__ import annotations

from pathlib import Path

from refeed.config import ConfigError

_BOS = "{{- bos_token if bos_token is defined and bos_token else '' }}"

CHATML = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

LLAMA3 = (
    _BOS + "{%- if date_string is not defined %}{%- set date_string = strftime_now('%d %b %Y') %}{%- endif %}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content'] | trim %}{%- set messages = messages[1:] %}"
    "{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\nToday Date: ' + date_string + '\\n\\n' }}"
    "{{- system_message + '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)

REASONING = (
    "{%- for message in messages %}"
    "{%- set content = message['content'] %}"
    "{%- if message['role'] == 'assistant' and '</think>' in content %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + content + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

GEMMA = (
    _BOS + "{%- if messages[0]['role'] == 'system' %}"
    "{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' %}{%- set loop_messages = messages[1:] %}"
    "{%- else %}{%- set first_user_prefix = '' %}{%- set loop_messages = messages %}{%- endif %}"
    "{%- for message in loop_messages %}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif %}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{- '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}"
    "{{- message['content'] | trim + '<end_of_turn>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<start_of_turn>model\\n' }}{%- endif %}"
)

MISTRAL = (
    _BOS + "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content'] %}{%- set loop_messages = messages[1:] %}"
    "{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{%- for message in loop_messages %}"
    "{%- if message['role'] == 'user' %}"
    "{%- if loop.last and system_message is defined %}"
    "{{- '[INST] ' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}"
    "{%- else %}{{- '[INST] ' + message['content'] + '[/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + eos_token }}"
    "{%- else %}{{- raise_exception('Only user and assistant roles are supported after an optional system message') }}"
    "{%- endif %}"
    "{%- endfor %}"
)

PHI3 = (
    "{%- for message in messages %}"
    "{{- '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|assistant|>\\n' }}{%- endif %}"
)

TEMPLATES: dict[str, str] = {
    "chatml": CHATML,
    "llama3": LLAMA3,
    "reasoning": REASONING,
    "gemma": GEMMA,
    "mistral": MISTRAL,
    "phi3": PHI3,
}


def resolve_chat_template(option: str) -> str:
    """The Jinja text for ``option``: a name in ``TEMPLATES`` or the path of a template file."""
    if option in TEMPLATES:
        return TEMPLATES[option]
    path = Path(option).expanduser()
    if path.is_file():
        return path.read_text()
    raise ConfigError(
        f"model.chat_template='{option}' is neither a named template ({', '.join(TEMPLATES)}) "
        f"nor an existing Jinja file"
    )


def set_chat_template(tokenizer, option: str) -> None:
    """Give ``tokenizer`` the template ``option`` names; an empty option leaves its own template."""
    if option:
        tokenizer.chat_template = resolve_chat_template(option)


def is_conversational(row: dict) -> bool:
    """Whether a dataset row holds chat messages (TRL's conversational form) in a text column."""
    return any(
        isinstance(v, list) and bool(v) and isinstance(v[0], dict) and "role" in v[0]
        for k, v in row.items()
        if k in ("prompt", "chosen", "rejected", "completion", "messages")
    )


def require_chat_template(tokenizer, model: str) -> None:
    """Refuse, with the fix, a tokenizer that cannot render chat messages (a base model's)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            f"the tokenizer of '{model}' has no chat template (a base model?), and this data is "
            f"conversational (message lists). Set one with model.chat_template=chatml (named: "
            f"{', '.join(TEMPLATES)}) or model.chat_template=path/to/template.jinja, or pass "
            f"plain-text prompts and completions"
        )
