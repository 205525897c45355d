"""Hand-made float64 log-prob and score containers for the objective tests."""

from __future__ import annotations

import torch

from refeed.objectives import GroupLogps, PairLogps, PairScores, TokenLogps, TokenScores

D = torch.float64


def seq(values, requires_grad=False) -> TokenLogps:
    """Per-sequence log-probs as one-token sequences, shape (B, 1)."""
    v = torch.tensor(values, dtype=D)[:, None].requires_grad_(requires_grad)
    return TokenLogps(v, torch.ones(len(values), 1, dtype=torch.bool))


def tokens(rows, requires_grad=False) -> TokenLogps:
    """Ragged per-token log-probs, right-padded with masked zeros, shape (B, max len)."""
    width = max(len(r) for r in rows)
    v = torch.zeros(len(rows), width, dtype=D)
    m = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, r in enumerate(rows):
        v[i, : len(r)] = torch.tensor(r, dtype=D)
        m[i, : len(r)] = True
    return TokenLogps(v.requires_grad_(requires_grad), m)


def pair(chosen, rejected, requires_grad=False) -> PairLogps:
    return PairLogps(seq(chosen, requires_grad), seq(rejected, requires_grad))


def scores(last, requires_grad=False, pad=2) -> TokenScores:
    """Head outputs (B, pad+1, H) whose last completion token holds ``last`` (B, H); earlier tokens hold noise."""
    last = torch.tensor(last, dtype=D)
    if last.ndim == 1:
        last = last[:, None]
    b, h = last.shape
    v = torch.cat([torch.full((b, pad, h), 7.0, dtype=D), last[:, None, :]], 1)  # (B, pad+1, H)
    v = v.detach().requires_grad_(requires_grad)
    return TokenScores(v, torch.ones(b, pad + 1, dtype=torch.bool))


def pair_scores(chosen, rejected, requires_grad=False) -> PairScores:
    return PairScores(scores(chosen, requires_grad), scores(rejected, requires_grad))


def group(sums, valid=None, requires_grad=False) -> GroupLogps:
    """(B, K) sequence log-probs as one-token completions (B, K, 1)."""
    v = torch.tensor(sums, dtype=D)[..., None].requires_grad_(requires_grad)
    ok = torch.ones(v.shape[:2], dtype=torch.bool) if valid is None else torch.tensor(valid)
    return GroupLogps(v, ok[..., None].clone(), ok)
