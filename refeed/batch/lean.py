"""Llama-family MLP and RMSNorm that keep fewer tensors for backward: same forward ops, same values.

    with lean_layers(model):          # for one forward; backward may run after the block
        hidden = decoder(input_ids=ids, position_ids=pos).last_hidden_state

What autograd keeps per token per decoder layer, in float32 hidden-size units (H; the MLP width I is
~3H in most Llama shapes), for transformers' own modules and for these:

| piece | transformers' modules | here |
|---|---|---|
| SwiGLU MLP ``down(silu(gate(x)) * up(x))`` | x, gate, silu(gate), up, the product: H + 4I | x, gate, up: H + 2I |
| RMSNorm ``w * (x * rsqrt(mean(x^2) + eps))`` | x, x * rsqrt (next to the output the linear keeps): 2H | x (and rsqrt): H |

``silu(gate) * up`` and ``x * rsqrt`` are recomputed in backward, elementwise (no change in ``train()``
time that ``bench/dpo_memory.py`` could see on 2 shared cores); the matrix multiplies are never recomputed. The forward runs the same ops in the same order as
transformers' modules, so outputs are bit-identical; backward uses the formulas of autograd's own
derivatives (``silu_backward``, mul, rsqrt, mean, pow), so gradients agree to float32 rounding (some
terms are summed in another order; ``tests/batch/test_lean.py``). On one micro-batch of the realistic
DPO rows of ``bench/dpo_vs_trl.py`` (tiny Llama, 2,670 positions) the tensors saved for backward go from
127 to 84 MiB.

Under CUDA autocast (bf16) backward runs in the forward's autocast state (``torch.amp.custom_fwd`` /
``custom_bwd``); that path is **untested**: no GPU was lent to this work. bf16 weights on CPU are tested.

``lean_layers`` swaps ``forward`` on the module instances of the known classes (Llama, Qwen2, Qwen3,
Mistral) for the duration of the block and leaves any module alone whose ``forward`` was already
replaced on the instance (accelerate's offload hooks do that), whose MLP has biases, another
activation or layers that are not plain ``nn.Linear`` (LoRA, quantized), or that is of any other class.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

MLP_CLASSES = frozenset({"LlamaMLP", "Qwen2MLP", "Qwen3MLP", "MistralMLP"})
NORM_CLASSES = frozenset({"LlamaRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm", "MistralRMSNorm"})


class _SwiGLU(torch.autograd.Function):
    """``down(silu(gate) * up)`` of x (..., H): keeps x, gate and up, recomputes the product in backward."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")  # backward runs under the forward's autocast state (bf16 on CUDA)
    def forward(ctx, x, w_gate, w_up, w_down):
        gate, up = F.linear(x, w_gate), F.linear(x, w_up)  # (..., I)
        out = F.linear(F.silu(gate).mul_(up), w_down)  # (..., H); in place: one (..., I) temporary, not two
        ctx.save_for_backward(x, gate, up, w_gate, w_up, w_down)
        return out

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad_out):
        x, gate, up, w_gate, w_up, w_down = ctx.saved_tensors
        # Temporaries are dropped as soon as they are used: at most three (..., I) tensors at a time.
        i_dim, x2 = gate.shape[-1], x.reshape(-1, x.shape[-1])
        act = F.silu(gate)  # (..., I), recomputed
        prod = act * up  # recomputed
        grad_down = grad_out.reshape(-1, grad_out.shape[-1]).t().mm(prod.reshape(-1, i_dim))  # (H, I)
        del prod
        grad_h = grad_out.matmul(w_down)  # (..., I)
        grad_up = grad_h * act
        del act
        grad_gate = torch.ops.aten.silu_backward(grad_h.mul_(up), gate)
        del grad_h
        grad_x = grad_gate.matmul(w_gate).add_(grad_up.matmul(w_up))  # (..., H)
        grad_w_gate = grad_gate.reshape(-1, i_dim).t().mm(x2)
        grad_w_up = grad_up.reshape(-1, i_dim).t().mm(x2)
        return grad_x, grad_w_gate, grad_w_up, grad_down


class _RMSNorm(torch.autograd.Function):
    """``w * (x * rsqrt(mean(x^2) + eps))`` over the last dim, in float32 as transformers computes it;
    keeps x and rsqrt (B..., 1), recomputes ``x * rsqrt`` in backward."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, x, weight, eps: float):
        x32 = x.to(torch.float32)
        rstd = torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)  # (..., 1)
        ctx.save_for_backward(x, rstd, weight)
        return weight * (x32 * rstd).to(x.dtype)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad_out):
        x, rstd, weight = ctx.saved_tensors
        x32 = x.to(torch.float32)
        normed = (x32 * rstd).to(x.dtype)  # recomputed
        grad_w = (grad_out * normed).reshape(-1, weight.shape[-1]).sum(0) if ctx.needs_input_grad[1] else None
        grad_n = (grad_out * weight).to(torch.float32)
        grad_rstd = (grad_n * x32).sum(-1, keepdim=True)
        grad_var = grad_rstd * (-0.5 * rstd.pow(3))  # rsqrt's derivative in terms of its result
        grad_x = grad_n * rstd + grad_var.expand_as(x32) / x32.shape[-1] * (2 * x32)  # x * rstd, mean, pow
        return grad_x.to(x.dtype), grad_w, None


def _mlp_forward(mlp):
    def forward(x):
        return _SwiGLU.apply(x, mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight)

    return forward


def _norm_forward(norm):
    def forward(x):
        return _RMSNorm.apply(x, norm.weight, norm.variance_epsilon)

    return forward


def _swappable(m) -> bool:
    name = type(m).__name__
    if "forward" in vars(m):  # already replaced on the instance (accelerate hooks): leave it
        return False
    if name in MLP_CLASSES:
        silu = type(getattr(m, "act_fn", None)).__name__ in ("SiLU", "SiLUActivation")
        # plain Linear layers only: a LoRA (peft) or quantized layer's ``.weight`` is its frozen base weight,
        # and using it here would bypass the adapter
        plain = all(type(getattr(m, p, None)) is torch.nn.Linear and getattr(m, p).bias is None
                    for p in ("gate_proj", "up_proj", "down_proj"))
        return silu and plain
    return name in NORM_CLASSES and hasattr(m, "variance_epsilon")


@contextlib.contextmanager
def lean_layers(model):
    """``model``'s Llama-family MLPs and RMSNorms run as ``_SwiGLU`` / ``_RMSNorm`` within the block."""
    swapped = [m for m in model.modules() if _swappable(m)]
    for m in swapped:
        m.forward = _mlp_forward(m) if type(m).__name__ in MLP_CLASSES else _norm_forward(m)
    try:
        yield
    finally:
        for m in swapped:
            del m.forward
