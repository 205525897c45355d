"""Shared fixtures. No network: the hub is forced offline so a hub id fails at once."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The built-in tiny model written to disk once per session (random weights)."""
    from refeed.models.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def tiny(tiny_model_dir):
    """A fresh (model, tokenizer) loaded through from_pretrained, safe to train in a test."""
    from refeed.models import load

    return load(tiny_model_dir)
