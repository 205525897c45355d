"""Models: loading through ``from_pretrained``, the built-in tiny model, generation."""

from refeed.models.loading import ModelNotFoundError, load, load_model, load_tokenizer, resolve_dtype

__all__ = ["ModelNotFoundError", "load", "load_model", "load_tokenizer", "resolve_dtype"]
