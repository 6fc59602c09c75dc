"""Gradients: gradcheck where exact, the AdaNorm paper's theorem (claim B3), and the detach variants."""

import pytest
import torch
import torch.nn.functional as F

from normlab.norms import build_norm
from normlab.norms.power import group_scaling
from normlab.norms.theory import gradient_theorem_check

from .helpers import random_padding

# Norms whose backward is the exact derivative of their forward (DetachNorm, AdaNorm and PowerNorm
# are exact by design *not*: they stop or approximate parts of the gradient).
EXACT = ["ln", "ln_simple", "rmsnorm", "dyt", "bn", "rbn", "pn_vanilla", "none"]


@pytest.mark.parametrize("name", EXACT)
@pytest.mark.parametrize("training", [True, False])
def test_gradcheck_in_double_precision(name, training):
    norm = build_norm(name, 5).double().train(training)
    with torch.no_grad():
        for p in norm.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    x = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    pad = random_padding(3, 4)
    assert torch.autograd.gradcheck(lambda t: norm(t, pad), (x,), eps=1e-6, atol=1e-5)


def test_gradcheck_of_group_scaling_and_of_a_group_scaled_pn_vanilla():
    # GroupScaling (an RMS scaling per token and group, PowerNorm's first step) has an exact backward
    x = torch.randn(3, 4, 6, dtype=torch.float64, requires_grad=True) * 2
    assert torch.autograd.gradcheck(lambda t: group_scaling(t, 3), (x,), eps=1e-6, atol=1e-5)
    norm = build_norm("pn_vanilla", 6, groups=2).double()
    pad = random_padding(3, 4)
    assert torch.autograd.gradcheck(lambda t: norm(t, pad), (x,), eps=1e-6, atol=1e-5)


def test_gradcheck_of_the_rbn_penalty():
    # momentum 0 keeps the running statistics fixed between gradcheck's repeated forwards
    for kind in ("diff", "diff2"):
        rbn = build_norm("rbn", 4, penalty_mean=2.0, penalty_var=0.7, penalty_type=kind, momentum=0.0)
        rbn.double()
        x = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True) * 1.5 + 0.3

        def penalty(t, rbn=rbn):
            rbn(t, None)
            return rbn.penalty()

        assert torch.autograd.gradcheck(penalty, (x,), eps=1e-6, atol=1e-5)


def test_gradient_theorem_claim_b3():
    """Each statement of the theorem holds on our layers; an RMSNorm in LN-simple's place breaks it."""
    checks = gradient_theorem_check(trials=100)
    assert [c.label for c in checks] == ["LN-simple", "detach σ", "detach μ", "DetachNorm"]
    assert all(c.holds for c in checks), checks
    (rms,) = gradient_theorem_check(trials=100, statements=(("rms", "rmsnorm", {}, "zero", "le"),))
    assert not rms.holds and rms.max_mean_error > 1e-3


def test_detachnorm_with_nothing_detached_has_ln_simples_gradient():
    x = torch.randn(2, 3, 16, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 3, 16, dtype=torch.float64)
    build_norm("detachnorm", 16, detach_mean=False, detach_std=False)(x).backward(g)
    x2 = x.detach().clone().requires_grad_(True)
    build_norm("ln_simple", 16)(x2).backward(g)
    torch.testing.assert_close(x.grad, x2.grad)


def test_adanorm_backward_treats_the_scaling_as_a_constant():
    x = torch.randn(2, 3, 16, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 3, 16, dtype=torch.float64)
    build_norm("adanorm", 16, scale=2.0, k=0.1)(x).backward(g)
    # Reference: LN-simple's backward of the upstream gradient times φ(y) = C(1 − k y).
    x2 = x.detach().clone().requires_grad_(True)
    y = F.layer_norm(x2, (16,), eps=1e-5)
    y.backward(g * 2.0 * (1 - 0.1 * y.detach()))
    torch.testing.assert_close(x.grad, x2.grad)


def test_rbn_penalty_has_no_gradient_to_the_running_buffers():
    rbn = build_norm("rbn", 6, penalty_mean=3.0, penalty_var=1.0)
    rbn(torch.randn(4, 5, 6))
    rbn.running_mean.requires_grad_(True)
    rbn.running_var.requires_grad_(True)
    x = torch.randn(4, 5, 6, requires_grad=True)
    rbn(x)
    grads = torch.autograd.grad(rbn.penalty(), [rbn.running_mean, rbn.running_var, x], allow_unused=True)
    assert grads[0] is None and grads[1] is None
    assert grads[2].abs().sum() > 0  # ... while the batch statistics do carry it
