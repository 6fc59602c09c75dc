"""PowerNorm's forward, running statistic and approximate backward against the published algorithm."""

import math

import torch

from normlab.norms import build_norm

from .helpers import random_padding


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


def _paper_algorithm_2(steps, alpha=0.9, eps=1e-5, warmup=3):
    """The paper's Algorithm 2 written as published (ν_paper = (1 − α_b)·ν_code), for one channel set."""
    psi2, nu = None, None
    outputs = []
    for t, (x, keep, upstream) in enumerate(steps, start=1):
        tokens = x[keep]
        c = x.shape[-1]
        psi2 = torch.ones(c, dtype=x.dtype) if psi2 is None else psi2
        nu = torch.zeros(c, dtype=x.dtype) if nu is None else nu
        psi_b2 = (tokens**2).mean(0)
        xhat = x / torch.sqrt((psi_b2 if t <= warmup else psi2) + eps)
        if t < warmup:
            psi2 = psi2 * (t - 1) / t + psi_b2 / t
        psi2 = alpha * psi2 + (1 - alpha) * psi_b2
        g = upstream * keep.unsqueeze(-1)
        g_tilde = (g - nu * xhat) * keep.unsqueeze(-1)
        gamma = (xhat[keep] ** 2).mean(0)
        lam = (g[keep] * xhat[keep]).mean(0)
        nu = nu * (1 - (1 - alpha) * gamma) + (1 - alpha) * lam
        outputs.append((xhat, g_tilde / torch.sqrt(psi_b2 + eps), psi2.clone(), nu.clone()))
    return outputs


def test_matches_the_papers_algorithm_over_warm_up_and_after():
    pn = build_norm("powernorm", 6, groups=0, warmup_iters=3).double()
    steps = []
    for _ in range(6):
        x = torch.randn(3, 5, 6, dtype=torch.float64) * 2 + 0.5
        pad = random_padding(3, 5)
        steps.append((x, ~pad, torch.randn(3, 5, 6, dtype=torch.float64)))
    reference = _paper_algorithm_2(steps)
    for (x, keep, upstream), (xhat, dx, psi2, nu_paper) in zip(steps, reference, strict=True):
        x = x.clone().requires_grad_(True)
        y = pn(x, ~keep)
        y.backward(upstream)
        torch.testing.assert_close(y[keep], xhat[keep])
        torch.testing.assert_close(x.grad[keep], dx[keep])
        assert x.grad[~keep].abs().max() == 0 if (~keep).any() else True
        torch.testing.assert_close(pn.running_phi, psi2)
        torch.testing.assert_close((1 - 0.9) * pn.ema_gz, nu_paper)


def test_inference_is_a_per_channel_affine_map():
    pn = build_norm("powernorm", 4, groups=0, warmup_iters=1)
    for _ in range(3):
        pn(torch.randn(2, 3, 4)).sum().backward()
    with torch.no_grad():
        pn.weight.uniform_(0.5, 2), pn.bias.uniform_(-1, 1)
    pn.eval()
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(pn(x), x / torch.sqrt(pn.running_phi + 1e-5) * pn.weight + pn.bias)
