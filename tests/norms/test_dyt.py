"""Dynamic Tanh (``dyt``): its formula by hand, its gradients, and how the registry builds it."""

import math

import pytest
import torch
from torch.func import functional_call

from normlab.norms import BatchStatNorm, batch_stat_norms, build_norm, norm_options


def test_formula_by_hand():
    dyt = build_norm("dyt", 2)  # α = 0.5, γ = 1, β = 0
    x = torch.tensor([[[2.0, -1.0], [0.0, 4.0]]])
    expected = [[[math.tanh(1.0), math.tanh(-0.5)], [0.0, math.tanh(2.0)]]]
    torch.testing.assert_close(dyt(x), torch.tensor(expected))
    with torch.no_grad():
        dyt.alpha.fill_(2.0), dyt.weight.copy_(torch.tensor([3.0, -1.0])), dyt.bias.copy_(torch.tensor([0.5, 1.0]))
    expected = [[[3 * math.tanh(4.0) + 0.5, -math.tanh(-2.0) + 1], [0.5, -math.tanh(8.0) + 1]]]
    torch.testing.assert_close(dyt(x), torch.tensor(expected))


def test_gradients_of_input_and_parameters_by_hand_and_by_gradcheck():
    dyt = build_norm("dyt", 3, alpha_init=0.7).double()
    with torch.no_grad():
        dyt.weight.copy_(torch.tensor([1.5, -0.5, 2.0])), dyt.bias.copy_(torch.tensor([0.1, 0.2, -0.3]))
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(2, 4, 3, dtype=torch.float64)
    (dyt(x) * upstream).sum().backward()
    t = torch.tanh(0.7 * x.detach())
    dt = upstream * dyt.weight.detach() * (1 - t**2)  # ∂L/∂(αx)
    torch.testing.assert_close(x.grad, 0.7 * dt)
    torch.testing.assert_close(dyt.alpha.grad, (dt * x.detach()).sum())
    torch.testing.assert_close(dyt.weight.grad, (upstream * t).sum((0, 1)))
    torch.testing.assert_close(dyt.bias.grad, upstream.sum((0, 1)))

    params = {k: v.detach().clone().requires_grad_(True) for k, v in dyt.named_parameters()}
    names = list(params)

    def f(x, *values):
        return functional_call(dyt, dict(zip(names, values, strict=True)), (x,))

    assert torch.autograd.gradcheck(f, (x.detach().requires_grad_(True), *params.values()))


def test_registry_options_and_kind():
    assert norm_options("dyt") == ["alpha_init"]
    dyt = build_norm("dyt", 8, alpha_init=1.25)
    assert dyt.alpha.item() == 1.25 and dyt.alpha.shape == () and dyt.alpha.requires_grad
    assert {n for n, _ in dyt.named_parameters()} == {"alpha", "weight", "bias"}
    assert "alpha_init=1.25" in repr(dyt)
    with pytest.raises(ValueError, match="'dyt' does not take option.*valid options: alpha_init"):
        build_norm("dyt", 8, eps=1e-5)
    # a per-token map: no batch statistics, no buffers, no penalty; training and eval agree
    assert not isinstance(dyt, BatchStatNorm) and not batch_stat_norms(dyt) and not list(dyt.buffers())
    assert dyt.penalty() is None
    x = torch.randn(3, 5, 8)
    torch.testing.assert_close(dyt.train()(x), dyt.eval()(x))


def test_padding_changes_nothing_at_the_other_tokens():
    dyt = build_norm("dyt", 4)
    x = torch.randn(2, 5, 4)
    pad = torch.zeros(2, 5, dtype=torch.bool)
    pad[0, 3:] = True
    y = dyt(x, pad)
    x_garbage = x.clone()
    x_garbage[pad] = 1e4
    torch.testing.assert_close(dyt(x_garbage, pad)[~pad], y[~pad])


def test_bf16_inputs_under_autocast_give_the_float32_results_within_bf16_rounding():
    x = torch.randn(3, 5, 8)
    upstream = torch.randn(3, 5, 8)
    grads = []
    for mixed in (False, True):
        dyt = build_norm("dyt", 8, alpha_init=0.8)
        inp = (x.bfloat16() if mixed else x.bfloat16().float()).requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed):
            (dyt(inp, None).float() * upstream).sum().backward()
        grads.append([inp.grad.float(), *(p.grad for p in dyt.parameters())])
    for mixed, exact in zip(*grads, strict=True):
        torch.testing.assert_close(mixed, exact, rtol=2e-2, atol=2e-2)
