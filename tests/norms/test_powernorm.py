"""PowerNorm's forward, running statistic and approximate backward against the published algorithm."""

import math

import pytest
import torch

from normlab.norms import build_norm


def test_hand_computed_two_steps():
    # One channel, two tokens x = (1, 3), no GroupScaling, eps 0, warm-up of one step, α_f = α_b = 0.9.
    pn = build_norm("powernorm", 1, groups=0, eps=0.0, warmup_iters=1)
    x = torch.tensor([[[1.0], [3.0]]])
    upstream = torch.tensor([[[1.0], [2.0]]])
    r5 = math.sqrt(5.0)

    # step 1 (in warm-up): ψ_B² = (1 + 9)/2 = 5, so x̂ = x/√5; ψ² = 0.9·1 + 0.1·5 = 1.4.
    x1 = x.clone().requires_grad_(True)
    y1 = pn(x1)
    torch.testing.assert_close(y1, x / r5)
    torch.testing.assert_close(pn.running_phi, torch.tensor([1.4]))
    # backward: ν = 0, so g̃ = g, ∂x = g/√5 and ν = mean(g x̂) = (1·1/√5 + 2·3/√5)/2 = 7/(2√5).
    y1.backward(upstream)
    torch.testing.assert_close(x1.grad, upstream / r5)
    nu1 = 7 / (2 * r5)
    torch.testing.assert_close(pn.ema_gz, torch.tensor([nu1]))

    # step 2 (after warm-up): the forward divides by the running ψ² = 1.4; then ψ² = 0.9·1.4 + 0.1·5 = 1.76.
    x2 = x.clone().requires_grad_(True)
    y2 = pn(x2)
    xhat = x / math.sqrt(1.4)
    torch.testing.assert_close(y2, xhat)
    torch.testing.assert_close(pn.running_phi, torch.tensor([1.76]))
    # backward: g̃ = g − 0.1 ν x̂, and ∂x = g̃ / √ψ_B² = g̃/√5 (batch statistic, as released).
    y2.backward(upstream)
    g_tilde = torch.tensor([[[1 - 0.1 * nu1 * 1 / math.sqrt(1.4)], [2 - 0.1 * nu1 * 3 / math.sqrt(1.4)]]])
    torch.testing.assert_close(x2.grad, g_tilde / r5)
    torch.testing.assert_close(pn.ema_gz, torch.tensor([nu1 + (g_tilde * xhat).mean().item()]))
    torch.testing.assert_close(pn.iters, torch.tensor(2))


def test_algorithm_2_by_hand_through_a_three_step_warm_up_and_past_it():
    """Five steps of Algorithm 2 (Shen et al. 2020) on one channel, warm-up T = 3, α_f = α_b = 0.9, ε = 0.

    Written from the paper's description, not from the implementation: the forward divides by the batch
    quadratic mean ψ_B² while t ≤ T and by the running ψ² of the previous steps after; ψ² is first the
    cumulative average of the ψ_B² (while t < T), then an EMA every step; the backward is the paper's form
    g̃ = g − ν x̂, ∂x = g̃ / ψ_B, ν ← ν(1 − (1−α_b)Γ) + (1−α_b)Λ with Γ = mean x̂², Λ = mean g·x̂ over the
    non-pad tokens (the module's ``ema_gz`` is ν / (1 − α_b)).  Padding (the last token of steps 2 and 5)
    carries garbage values and gradients that must change nothing.
    """
    pn = build_norm("powernorm", 1, groups=0, eps=0.0, warmup_iters=3, alpha_fwd=0.9, alpha_bkw=0.9).double()
    #        tokens (non-pad)  pad value  ψ_B²  upstream g     running ψ² after the step (by hand)
    steps = [((1.0, 3.0), None, 5.0, (1.0, 2.0), 5.0),  # t<T: 1·0/1 + 5/1 = 5, then 0.9·5 + 0.1·5
             ((2.0, 2.0), 9.0, 4.0, (-1.0, 0.5), 4.45),  # t<T: 5/2 + 4/2 = 4.5, then 0.9·4.5 + 0.1·4
             ((1.0, -1.0), None, 1.0, (0.5, 0.5), 4.105),  # t=T: the EMA alone, 0.9·4.45 + 0.1·1
             ((3.0, 1.0), None, 5.0, (2.0, -1.0), 4.1945),  # 0.9·4.105 + 0.1·5
             ((2.0, 4.0), 7.0, 10.0, (1.0, 1.0), 4.77505)]  # 0.9·4.1945 + 0.1·10
    nu, previous_psi2 = 0.0, None
    for t, (tokens, pad_value, psi_b2, g, psi2) in enumerate(steps, start=1):
        values = list(tokens) + ([pad_value] if pad_value is not None else [])
        x = torch.tensor(values, dtype=torch.float64).view(1, -1, 1).requires_grad_(True)
        pad = torch.tensor([[False, False] + [True] * (pad_value is not None)])
        upstream = torch.tensor(list(g) + [5.0] * (pad_value is not None), dtype=torch.float64).view(1, -1, 1)
        y = pn(x, pad)
        divisor = math.sqrt(psi_b2 if t <= 3 else previous_psi2)
        xhat = [v / divisor for v in tokens]
        torch.testing.assert_close(y[0, :2, 0], torch.tensor(xhat, dtype=torch.float64))
        assert pn.running_phi.item() == pytest.approx(psi2, rel=1e-12)
        assert pn.batch_var.item() == pytest.approx(psi_b2, rel=1e-12)

        y.backward(upstream)
        g_tilde = [gi - nu * xi for gi, xi in zip(g, xhat, strict=True)]
        dx = [gt / math.sqrt(psi_b2) for gt in g_tilde] + [0.0] * (pad_value is not None)
        torch.testing.assert_close(x.grad.view(-1), torch.tensor(dx, dtype=torch.float64))
        gamma = sum(xi * xi for xi in xhat) / 2
        lam = sum(gi * xi for gi, xi in zip(g, xhat, strict=True)) / 2
        nu = nu * (1 - 0.1 * gamma) + 0.1 * lam
        assert (1 - 0.9) * pn.ema_gz.item() == pytest.approx(nu, rel=1e-12, abs=1e-15)
        assert pn.weight.grad.item() == pytest.approx(2 * lam, rel=1e-12)  # Σ g·x̂ over the non-pad tokens
        assert pn.bias.grad.item() == pytest.approx(sum(g), rel=1e-12)
        pn.zero_grad()
        previous_psi2 = psi2
    assert pn.iters.item() == 5


def test_inference_is_a_per_channel_affine_map():
    pn = build_norm("powernorm", 4, groups=0, warmup_iters=1)
    for _ in range(3):
        pn(torch.randn(2, 3, 4)).sum().backward()
    with torch.no_grad():
        pn.weight.uniform_(0.5, 2), pn.bias.uniform_(-1, 1)
    pn.eval()
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(pn(x), x / torch.sqrt(pn.running_phi + 1e-5) * pn.weight + pn.bias)
