"""A causal LM with a scalar (or H-output) head on its last hidden states: the shape of every reward model.

    rm = ScoreModel.wrap(model, num_heads=1)        # a fresh head on a loaded causal LM
    values, mask = rm(input_ids, attention_mask, completion_mask)   # (B, T, H), (B, T)
    rm.save_pretrained(dir)                          # the LM as save_pretrained writes it + score_head.safetensors
    rm = ScoreModel.from_pretrained(dir)             # back through AutoModelForCausalLM.from_pretrained

Why the LM and not ``AutoModelForSequenceClassification``: the same directory stays loadable as a
causal LM (a policy can start from a reward model and the other way round), the head reads every
position (dense, per-token rewards for span objectives), and the loop's tokenization and chunking of
completion positions are shared with the log-prob objectives.

Position t of ``values`` is the head applied to the hidden state after reading token t, so the EOS
position has read the whole answer (``TokenScores.last``). The head starts at zero: every score is 0,
and a sigmoid reward is 0.5, before the first update.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

HEAD_FILE = "score_head.safetensors"
META_FILE = "score_head.json"


def _hidden(model, input_ids, attention_mask) -> torch.Tensor:
    """(B, T, hidden) last hidden states of a causal LM, without computing LM-head logits when possible."""
    try:
        decoder = model.get_decoder()
    except (AttributeError, NotImplementedError):
        decoder = None
    if decoder is not None:
        return decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    return out.hidden_states[-1]


class ScoreModel(torch.nn.Module):
    """``lm`` (a transformers causal LM) plus ``score_head`` = Linear(hidden, num_heads)."""

    def __init__(self, lm, num_heads: int = 1, meta: dict[str, Any] | None = None) -> None:
        super().__init__()
        if num_heads < 1:
            raise ValueError(f"num_heads must be >= 1, got {num_heads}")
        self.lm = lm
        hidden = lm.config.hidden_size
        self.score_head = torch.nn.Linear(hidden, num_heads, dtype=torch.float32)
        torch.nn.init.zeros_(self.score_head.weight)
        torch.nn.init.zeros_(self.score_head.bias)
        self.score_head.to(next(lm.parameters()).device)
        self.meta = dict(meta or {})  # e.g. the objective that trained the head, for refeed.rewards
        _freeze_untied_lm_head(lm)

    @property
    def num_heads(self) -> int:
        return self.score_head.out_features

    @property
    def config(self):
        return self.lm.config

    @classmethod
    def wrap(cls, lm, num_heads: int = 1, meta: dict[str, Any] | None = None) -> ScoreModel:
        return cls(lm, num_heads, meta)

    def forward(self, input_ids, attention_mask, completion_mask):
        """Returns ``(values, mask)``: head outputs (B, T, H) in float32, and completion positions (B, T) bool."""
        hidden = _hidden(self.lm, input_ids, attention_mask)  # (B, T, hidden)
        values = self.score_head(hidden.float())  # (B, T, H)
        return values, completion_mask.bool()

    def save_pretrained(self, path: str | Path, **kwargs) -> None:
        from safetensors.torch import save_file

        path = Path(path)
        self.lm.save_pretrained(path, **kwargs)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.score_head.state_dict().items()}, path / HEAD_FILE)
        (path / META_FILE).write_text(json.dumps({"num_heads": self.num_heads, **self.meta}, indent=2))

    def load_head(self, path: str | Path) -> None:
        from safetensors.torch import load_file

        state = load_file(Path(path) / HEAD_FILE)
        self.score_head.load_state_dict({k: v.to(self.score_head.weight.device) for k, v in state.items()})

    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: str = "float32", device: str = "cpu") -> ScoreModel:
        """A reward model saved by ``save_pretrained``; the LM loads through ``refeed.models.load_model``."""
        from refeed.models.loading import ModelNotFoundError, load_model

        path = Path(path)
        if not (path / HEAD_FILE).is_file() or not (path / META_FILE).is_file():
            raise ModelNotFoundError(
                f"'{path}' holds no reward-model head ({HEAD_FILE}, {META_FILE}); train one with a "
                f"score-head objective, e.g. `refeed train recipes/bradley_terry.yaml`")
        meta = json.loads((path / META_FILE).read_text())
        model = cls(load_model(path, dtype=dtype, device=device), int(meta.pop("num_heads")), meta)
        model.load_head(path)
        return model


def _freeze_untied_lm_head(lm) -> None:
    """The LM head takes no part in scoring; freeze it unless it IS the input embedding (tied), so
    that DDP sees no parameter without a gradient and the optimizer carries no dead state."""
    out, inp = lm.get_output_embeddings(), lm.get_input_embeddings()
    if out is not None and (inp is None or out.weight is not inp.weight):
        out.weight.requires_grad_(False)
