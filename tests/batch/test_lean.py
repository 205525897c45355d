"""The lean MLP and RMSNorm (refeed.batch.lean) against transformers' own modules: the same outputs and the
same gradients on Llama, Qwen2, Qwen3 and Mistral shapes, fewer bytes saved for backward. Budget: ~2 s."""

import contextlib

import pytest
import torch

from refeed.batch.lean import lean_layers


def _small(arch: str):
    import transformers as tf

    shape = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=96, max_position_embeddings=64, head_dim=8)
    cls = {"llama": tf.LlamaConfig, "qwen2": tf.Qwen2Config, "qwen3": tf.Qwen3Config, "mistral": tf.MistralConfig}[arch]
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(cls(**shape), attn_implementation="sdpa")
    with torch.no_grad():  # weights of a larger scale (norm weights away from 1), so every term counts
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model


def _run(model, ids, lean: bool):
    model.zero_grad()
    with lean_layers(model) if lean else contextlib.nullcontext():
        logits = model(input_ids=ids).logits  # (B, T, V)
    (logits * torch.linspace(-1, 2, logits.shape[-1])).sum().backward()
    return logits.detach(), [p.grad.clone() for p in model.parameters()]


def _saved_bytes(model, ids, lean: bool) -> int:
    storages: dict[int, int] = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with lean_layers(model) if lean else contextlib.nullcontext():
            model(input_ids=ids)
    return sum(storages.values())


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3", "mistral"])
def test_lean_layers_give_the_same_values_and_gradients(arch):
    model = _small(arch)
    ids = torch.randint(0, 64, (3, 17), generator=torch.Generator().manual_seed(1))
    logits, grads = _run(model, ids, lean=False)
    lean_logits, lean_grads = _run(model, ids, lean=True)
    assert torch.equal(logits, lean_logits)  # the same forward ops in the same order: bit-identical
    for name_grad, (a, b) in zip(model.named_parameters(), zip(grads, lean_grads, strict=True), strict=True):
        # float32 rounding: the gradient terms are summed in another order
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6 * (1 + a.abs().max().item()), msg=name_grad[0])
    assert all("forward" not in vars(m) for m in model.modules())  # swapped for the block only


def test_lean_layers_in_bfloat16_weights_match():
    model = _small("qwen3").to(torch.bfloat16)
    ids = torch.randint(0, 64, (2, 11), generator=torch.Generator().manual_seed(3))
    (logits, grads), (lean_logits, lean_grads) = _run(model, ids, lean=False), _run(model, ids, lean=True)
    assert torch.equal(logits, lean_logits)
    for a, b in zip(grads, lean_grads, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-2, atol=1e-2 * (1 + a.abs().max().item()))


def test_lean_layers_save_fewer_bytes_for_backward():
    """Per token per layer: MLP H + 4I -> H + 2I, RMSNorm 2H -> H (H = 32, I = 96 here)."""
    model = _small("llama")
    ids = torch.randint(0, 64, (2, 40), generator=torch.Generator().manual_seed(2))
    before, after = _saved_bytes(model, ids, lean=False), _saved_bytes(model, ids, lean=True)
    tokens, layers, h, i = 80, 2, 32, 96
    expected = 4 * tokens * (layers * (2 * i + 2 * h) + h)  # 2 MLP tensors and 2 norms per layer, the final norm
    assert before - after >= 0.9 * expected


def test_lean_layers_leave_replaced_forwards_and_other_modules_alone():
    model = _small("llama")
    mlp = model.model.layers[0].mlp
    hooked = lambda x: x  # noqa: E731 -- stands in for accelerate's instance-level forward wrapper
    mlp.forward = hooked
    with lean_layers(model):
        assert mlp.forward is hooked
        assert "forward" in vars(model.model.layers[1].mlp) and "forward" in vars(model.model.norm)
        assert "forward" not in vars(model.model.layers[0].self_attn)
    assert mlp.forward is hooked and "forward" not in vars(model.model.norm)


def test_lora_layers_are_left_to_peft_so_the_adapter_still_learns():
    """A peft LoRA layer's ``.weight`` is its frozen base weight: swapping its MLP would bypass the adapter. The
    MLPs stay peft's (norms, plain modules, are still swapped), outputs equal, and the adapter gets gradients."""
    from peft import LoraConfig, get_peft_model

    from refeed.batch import lean

    model = get_peft_model(_small("llama"), LoraConfig(r=4, target_modules=["gate_proj", "up_proj", "down_proj"],
                                                         init_lora_weights=False))
    assert not any(lean._swappable(m) for m in model.modules() if type(m).__name__ in lean.MLP_CLASSES)
    assert any(lean._swappable(m) for m in model.modules() if type(m).__name__ in lean.NORM_CLASSES)
    ids = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(0))
    plain = model(input_ids=ids).logits.detach()
    with lean_layers(model):
        swapped = model(input_ids=ids).logits
    swapped.sum().backward()
    assert torch.allclose(plain, swapped.detach(), atol=1e-5)
    lora = [p.grad for n, p in model.named_parameters() if "lora_" in n]
    assert lora and all(g is not None and g.abs().sum() > 0 for g in lora)
