"""Load any causal LM the real way: ``AutoModelForCausalLM`` / ``AutoTokenizer.from_pretrained``.

A local directory or a hub id both work where a hub is reachable. Offline, a hub id fails with a
message that names the directory option, instead of a long network traceback.
``add_lora`` puts peft adapters where they fit the architecture (``lora_targets``), so the same
recipe runs on Llama-style (``q_proj``), GPT-2 (``c_attn``) and fused-projection (Phi-3) models.
"""

from __future__ import annotations

from pathlib import Path


class ModelNotFoundError(FileNotFoundError):
    """The model could not be found locally and could not be fetched."""


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).expanduser().exists() or name.count("/") > 1


def resolve_dtype(dtype: str, device: str):
    """``"auto"`` -> bf16 on CUDA with bf16 support, else float32."""
    import torch

    if dtype == "auto":
        if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    except KeyError:
        raise ValueError(f"dtype must be auto, float32, bfloat16 or float16, got '{dtype}'") from None


def load_tokenizer(name_or_path: str | Path, chat_template: str = ""):
    """The tokenizer; ``chat_template`` (a name in ``refeed.models.templates`` or a Jinja file) replaces
    or supplies its chat template, e.g. ``"chatml"`` for a base model that has none."""
    from transformers import AutoTokenizer

    from refeed.models.templates import set_chat_template

    tok = _load(AutoTokenizer.from_pretrained, name_or_path)
    set_chat_template(tok, chat_template)
    return tok


def load_model(name_or_path: str | Path, dtype: str = "float32", device: str = "cpu", quantization: str = ""):
    """Load a causal LM for training or sampling, on ``device`` in ``dtype``.

    ``quantization`` "4bit" (NF4, the QLoRA recipe) or "8bit" loads the weights through bitsandbytes,
    which needs a CUDA device; train such a model with LoRA adapters only.
    """
    from transformers import AutoModelForCausalLM

    if not quantization:
        model = _load(AutoModelForCausalLM.from_pretrained, name_or_path, need_config=True, dtype=resolve_dtype(dtype, device))
        return model.to(device)
    model = _load(AutoModelForCausalLM.from_pretrained, name_or_path, need_config=True,
                  quantization_config=quantization_config(quantization, device), device_map={"": device},
                  dtype=resolve_dtype(dtype, device))
    return model


def quantization_config(kind: str, device: str):
    """transformers' ``BitsAndBytesConfig`` for ``kind``; refused with the fix when it cannot work here."""
    import importlib.util

    import torch

    if kind not in ("4bit", "8bit"):
        raise ValueError(f"model.quantization must be '', '4bit' or '8bit', got '{kind}'")
    if not (device.startswith("cuda") and torch.cuda.is_available()):
        raise ValueError(f"model.quantization={kind} (QLoRA) needs a CUDA GPU; on this machine use full "
                         f"precision with LoRA (model.lora.r=16) or no quantization")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError(f"model.quantization={kind} needs bitsandbytes: pip install bitsandbytes")
    from transformers import BitsAndBytesConfig

    if kind == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute)


def load(name_or_path: str | Path, dtype: str = "float32", device: str = "cpu", chat_template: str = ""):
    """``(model, tokenizer)`` from one directory or hub id."""
    return load_model(name_or_path, dtype, device), load_tokenizer(name_or_path, chat_template)


def lora_targets(model, target_modules: str | list[str] = "auto") -> str | list[str] | None:
    """What to pass as peft's ``target_modules`` for ``model``.

    "auto": peft's default for the architecture (``q_proj``/``v_proj`` on Llama-like models, ``c_attn``
    on GPT-2), or "all-linear" for an architecture peft has no default for (Phi-3's fused ``qkv_proj``).
    "all-linear": every linear layer but the output head (the QLoRA paper's choice). A list of module
    names is checked against the model, so a name from another family (``q_proj`` on GPT-2) is refused
    with the names this model has, instead of peft's bare "not found in the base model".
    """
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    if target_modules in ("auto", "", None):
        return None if getattr(model.config, "model_type", None) in DEFAULTS else "all-linear"
    if target_modules == "all-linear":
        return "all-linear"
    if isinstance(target_modules, str):
        target_modules = [target_modules]
    linear = [n for n, m in model.named_modules() if _is_linear(m)]
    missing = sorted(t for t in set(target_modules) if not any(n == t or n.endswith("." + t) for n in linear))
    if missing:  # peft matches a name against the end of the module path, as here
        raise ValueError(
            f"model.lora.target_modules: {missing} not in this {model.config.model_type} model; its linear "
            f"layers are {sorted({n.rsplit('.', 1)[-1] for n in linear})}. Use model.lora.target_modules=auto "
            f"(peft's default for the architecture) or all-linear"
        )
    return list(target_modules)


def _is_linear(module) -> bool:
    import torch
    from transformers.pytorch_utils import Conv1D  # GPT-2's linear layers

    return isinstance(module, torch.nn.Linear | Conv1D)


def add_lora(model, r: int, alpha: int = 16, dropout: float = 0.0, target_modules: str | list[str] = "auto"):
    """``model`` with LoRA adapters of rank ``r`` on ``lora_targets(model, target_modules)`` (peft)."""
    from peft import LoraConfig, get_peft_model
    from transformers.pytorch_utils import Conv1D

    targets = lora_targets(model, target_modules)
    fan_in_fan_out = any(isinstance(m, Conv1D) for m in model.modules())  # GPT-2 stores weights transposed
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets,
                     fan_in_fan_out=fan_in_fan_out, task_type="CAUSAL_LM")  # fmt: skip
    return get_peft_model(model, cfg)


def _load(fn, name_or_path: str | Path, need_config: bool = False, **kwargs):
    name = str(name_or_path)
    if _looks_like_path(name):
        p = Path(name).expanduser()
        if not p.is_dir():
            raise ModelNotFoundError(
                f"model directory '{p}' does not exist. Pass a directory written by save_pretrained "
                f"(e.g. the runs/base-<hash>/model that `refeed pretrain` prints) or a hub id."
            )
        if need_config and not (p / "config.json").is_file():
            raise ModelNotFoundError(f"'{p}' is not a model directory: it has no config.json.")
        name = str(p)
    try:
        return fn(name, **kwargs)
    except OSError as e:
        if _looks_like_path(name):
            raise
        raise ModelNotFoundError(
            f"could not load '{name}' from the Hugging Face hub (offline, or no such model): {e}. "
            f"Point refeed at a local model directory instead (model.path=/path/to/dir), for example "
            f"the built-in tiny model that `refeed pretrain` writes."
        ) from None
