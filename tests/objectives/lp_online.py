"""Hand-made float64 GROUP inputs for the online objectives' tests: (B, K, T) log-probs and their batch."""

from __future__ import annotations

import torch

from refeed.objectives import GroupLogps

D = torch.float64


def grp(values, lengths=None, valid=None, requires_grad=False) -> GroupLogps:
    """``values`` (B, K, T) nested lists; ``lengths`` (B, K) completion tokens per answer (default all T);
    ``valid`` (B, K) bools (default all). Values outside the mask are zeroed, as the loop's are."""
    v = torch.tensor(values, dtype=D)
    b, k, t = v.shape
    n = torch.tensor(lengths) if lengths is not None else torch.full((b, k), t)
    ok = torch.tensor(valid) if valid is not None else torch.ones(b, k, dtype=torch.bool)
    mask = (torch.arange(t)[None, None, :] < n[..., None]) & ok[..., None]
    return GroupLogps((v * mask).detach().requires_grad_(requires_grad), mask, ok)


def shift(g: GroupLogps, by) -> GroupLogps:
    """The same answers with ``by`` (broadcast to (B, K, T)) added to every completion token's log-prob."""
    return GroupLogps((g.values.detach() + torch.as_tensor(by, dtype=D)) * g.mask, g.mask, g.valid)


def batch(old: GroupLogps, rewards, truncated=None) -> dict:
    r = torch.tensor(rewards, dtype=D)
    t = torch.zeros(r.shape, dtype=torch.bool) if truncated is None else torch.tensor(truncated)
    return {"old_logps": old, "rewards": r, "group_valid": old.valid, "truncated": t}
