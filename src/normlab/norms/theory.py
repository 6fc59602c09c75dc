"""The AdaNorm paper's gradient theorem (claim B3), checked numerically on our norm layers.

For y = (x − μ)/σ over H features and an upstream gradient g, Xu et al. state:
    LN-simple         ∂ℓ/∂x has mean 0 and variance ≤ Var(g)/σ²
    detach σ only     mean 0, variance exactly Var(g)/σ²
    detach μ only     mean mean(g)/σ, variance ≤ Var(g)/σ²
    detach both       mean mean(g)/σ, variance exactly Var(g)/σ²  (DetachNorm)
`gradient_theorem_check` measures each statement on random inputs in float64 through the layers'
own backward passes; the claims report and tests/norms/test_gradients.py both call it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from normlab.norms import build_norm

# (label, norm name, options, expected mean: "zero" | "mean_g", variance relation: "le" | "eq")
STATEMENTS = (
    ("LN-simple", "ln_simple", {}, "zero", "le"),
    ("detach σ", "detachnorm", {"detach_mean": False, "detach_std": True}, "zero", "eq"),
    ("detach μ", "detachnorm", {"detach_mean": True, "detach_std": False}, "mean_g", "le"),
    ("DetachNorm", "detachnorm", {"detach_mean": True, "detach_std": True}, "mean_g", "eq"),
)


@dataclass
class TheoremCheck:
    label: str
    trials: int
    max_mean_error: float  # |measured mean − stated mean|, worst trial, in units of |mean(g)|/σ + 1e-12
    max_variance_excess: float  # worst (measured − stated) / stated variance: > 0 breaks a "≤"
    max_variance_error: float  # worst |measured − stated| / stated variance (for "exactly")
    holds: bool


def gradient_theorem_check(trials: int = 200, dim: int = 64, seed: int = 0, tol: float = 1e-9,
                           statements=STATEMENTS) -> list[TheoremCheck]:
    gen = torch.Generator().manual_seed(seed)
    checks = []
    for label, name, options, mean_kind, var_kind in statements:
        norm = build_norm(name, dim, **options).to(torch.float64)
        x = torch.randn(trials, 1, dim, generator=gen, dtype=torch.float64) * 3 + 1
        g = torch.randn(trials, 1, dim, generator=gen, dtype=torch.float64) + 0.4  # non-zero mean
        x.requires_grad_(True)
        norm(x).backward(g)
        grad = x.grad
        eps = getattr(norm, "eps", 1e-5)
        sigma = (x.detach().var(-1, unbiased=False) + eps).sqrt()
        scale = g.mean(-1).abs() / sigma + 1e-12
        stated_mean = torch.zeros_like(sigma) if mean_kind == "zero" else g.mean(-1) / sigma
        stated_var = g.var(-1, unbiased=False) / sigma**2
        var = grad.var(-1, unbiased=False)
        mean_err = ((grad.mean(-1) - stated_mean).abs() / scale).max().item()
        excess = ((var - stated_var) / stated_var).max().item()
        var_err = ((var - stated_var).abs() / stated_var).max().item()
        holds = mean_err <= tol and (excess <= tol if var_kind == "le" else var_err <= tol)
        checks.append(TheoremCheck(label, trials, mean_err, excess, var_err, holds))
    return checks
