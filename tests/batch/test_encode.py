"""Group rows: padded to the dataset's largest group, laid out sequence-major, cut back to (B, K, T)."""

from __future__ import annotations

import pytest
import torch

from refeed.batch.collate import collate, shape_for_objective
from refeed.batch.encode import check_columns, encode_for, encode_rows
from refeed.config import ConfigError
from refeed.objectives import build
from refeed.objectives.base import BatchKind, GroupLogps, TokenLogps, UnpairedLogps
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


def test_columns_that_do_not_fit_the_objective_are_refused(tiny):
    with pytest.raises(ConfigError, match=r"lacks \['completions'\].*refeed build groups"):
        check_columns(build("plackett_luce", {}), {"prompt", "chosen"})
    with pytest.raises(ConfigError, match=r"lacks \['completion', 'label'\]"):
        check_columns(build("ordinal", {}), {"prompt"})
    with pytest.raises(ConfigError, match=r"lacks \['scope'\]"):
        check_columns(build("c3po", {}), {"prompt", "chosen", "rejected"})
    with pytest.raises(ConfigError, match=r"lacks \['observed', 'propensity'\]"):
        check_columns(build("causal_rm", {}), {"prompt", "completion", "label"})
    from refeed.objectives.grpo import GRPO, GRPOConfig

    with pytest.raises(ConfigError, match="objective 'grpo' learns from answers sampled .* online loop"):
        check_columns(GRPO(GRPOConfig()), {"prompt", "completions"})
    with pytest.raises(ConfigError, match="set objective.categories"):
        check_columns(build("fine_grained", {}), {"prompt", "completion", "spans"})
    model, tok = tiny
    rows = [{"prompt": "p", "chosen": "a", "rejected": "b"}] * 4
    with pytest.raises(ConfigError, match=r"lacks \['stage'\]"):
        train(model, tok, rows, build("curry_dpo", {}), TrainConfig(batch_size=2, max_steps=1))
    with pytest.raises(ConfigError, match="row 1: column 'scope' must be a number"):
        encode_for(tok, [{**rows[0], "scope": 0}, {**rows[0], "scope": None}], build("c3po", {}), 64)
    with pytest.raises(ConfigError, match="row 0: column 'scope' must be a number, got nan"):
        encode_for(tok, [{**rows[0], "scope": float("nan")}], build("c3po", {}), 64)
    import numpy as np

    (enc,) = encode_for(tok, [{**rows[0], "scope": np.int64(2)}], build("c3po", {}), 64)  # numpy scalars count
    assert enc.extras["scope"] == 2.0
    with pytest.raises(ConfigError, match="at least 2 completions"):
        encode_rows(tok, [{"prompt": "p", "completions": ["only"]}], BatchKind.GROUP, 64)


def test_kto_rows_carry_the_previous_completion_as_kl_sequence(tiny):
    _, tok = tiny
    rows = [{"prompt": "p", "completion": c, "label": 1} for c in ("aa", "b", "ccc")]
    enc = encode_for(tok, rows, build("kto", {}), 64)
    ids = [tok(c, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for c in ("aa", "b", "ccc")]
    assert [r.answers for r in enc] == [[ids[0], ids[2]], [ids[1], ids[0]], [ids[2], ids[1]]]  # cyclic
    batch = collate(enc, tok.pad_token_id)
    s, t = batch["input_ids"].shape
    lp = TokenLogps(torch.arange(s, dtype=torch.float32)[:, None].expand(s, t - 1).clone(), torch.ones(s, t - 1, dtype=torch.bool))
    u = shape_for_objective(BatchKind.UNPAIRED, lp, 3, batch)
    assert isinstance(u, UnpairedLogps) and u.completion.values[:, 0].tolist() == [0, 1, 2] and u.kl.values[:, 0].tolist() == [3, 4, 5]


def test_span_rows_put_segment_labels_on_the_last_token_of_each_sentence(tiny):
    _, tok = tiny
    completion = "It is 4. It is 5!"
    row = {"prompt": "p", "completion": completion, "spans": [{"start": 9, "end": 17, "category": "Unverifiable"}]}
    obj = build("fine_grained", {"categories": ["irrelevant", "unverifiable"], "weights": [0.3, 0.5]})
    (enc,) = encode_for(tok, [row], obj, 64)
    batch = collate([enc], tok.pad_token_id, 2)
    p = len(enc.prompt)
    where = batch["segment_mask"][0].nonzero().tolist()  # (position, head) pairs
    # the character-level tokenizer: sentence ends "." (char 7) and "!" (char 16) are answer tokens 7 and 16
    assert where == [[p + 7, 0], [p + 7, 1], [p + 16, 0], [p + 16, 1]]
    assert tok.decode([batch["input_ids"][0, p + 7].item()]) == "." and tok.decode([batch["input_ids"][0, p + 16].item()]) == "!"
    labels = batch["segment_labels"][0]
    assert labels[p + 7].tolist() == [1.0, 1.0] and labels[p + 16].tolist() == [1.0, 0.0]  # the second sentence is unverifiable
