"""Group rows: padded to the dataset's largest group, laid out sequence-major, cut back to (B, K, T)."""

from __future__ import annotations

import pytest
import torch

from refeed.config import ConfigError
from refeed.objectives import build
from refeed.objectives.base import BatchKind, GroupLogps, TokenLogps
from refeed.train.batching import check_columns, collate, encode_rows, shape_for_objective
from refeed.train.loop import TrainConfig, train


def test_groups_are_padded_and_reshaped(tiny):
    _, tok = tiny
    rows = [{"prompt": "p", "completions": ["aa", "b", "ccc"]}, {"prompt": "q", "completions": ["d", "ee"]}]
    enc = encode_rows(tok, rows, BatchKind.GROUP, 64)
    assert [len(r.answers) for r in enc] == [3, 3] and enc[1].valid == [True, True, False]
    batch = collate(enc, tok.pad_token_id)
    assert batch["group_valid"].tolist() == [[True, True, True], [True, True, False]]
    s, t = batch["input_ids"].shape
    # Sequence-major: row r's answer j sits at index j * B + r; tag each sequence with that index.
    values = torch.arange(s, dtype=torch.float32)[:, None].expand(s, t - 1).clone()
    g = shape_for_objective(BatchKind.GROUP, TokenLogps(values, torch.ones(s, t - 1, dtype=torch.bool)), 2, batch)
    assert isinstance(g, GroupLogps) and g.values.shape == (2, 3, t - 1)
    assert g.values[:, :, 0].tolist() == [[0, 2, 4], [1, 3, 5]]


def test_columns_and_unsupported_objectives_are_refused(tiny):
    with pytest.raises(ConfigError, match=r"lacks \['completions'\]"):
        check_columns(BatchKind.GROUP, {"prompt", "chosen"}, "plackett_luce")
    with pytest.raises(ConfigError, match="graded rows, which the offline loop does not run yet"):
        check_columns(BatchKind.GRADED, {"prompt"}, "ordinal")
    model, tok = tiny
    rows = [{"prompt": "p", "chosen": "a", "rejected": "b"}] * 4
    with pytest.raises(ConfigError, match="score head.*not yet supported"):
        train(model, tok, rows, build("bradley_terry", {}), TrainConfig(batch_size=2, max_steps=1))
    with pytest.raises(ConfigError, match="at least 2 completions"):
        encode_rows(tok, [{"prompt": "p", "completions": ["only"]}], BatchKind.GROUP, 64)
