"""bn/rbn (forward, running statistics, penalty, and the written-out backward) against the RBN authors'
``MaskBatchNorm3d`` formulas differentiated by autograd in float64: 1e-6 in float32, 1e-12 in float64,
padded or not, for every option."""

import pytest
import torch

from normlab.norms import build_norm

from .helpers import random_padding


def _authors_formulas(x, pad, norm, weight, bias, running_mean, running_var):
    """MaskBatchNorm3d's training step as formulas (float64 autograd): y, new running stats, penalty.

    ``norm`` gives the hyper-parameters only; the state (weight, bias, running stats) is passed in.
    """
    keep = torch.ones(x.shape[:2], dtype=torch.bool) if pad is None else ~pad
    tokens = x[keep]
    n = max(tokens.shape[0], 1)
    mu = tokens.sum(0) / n
    var = (tokens**2).sum(0) / n - mu**2  # biased
    clamp = norm.eps_mode == "clamp"
    std = torch.sqrt(torch.clamp(var, min=norm.eps) if clamp else var + norm.eps)
    y = (x - mu) / std
    if weight is not None:
        y = y * weight + bias
    m = norm.momentum
    running_var_of_batch = var * n / max(n - 1, 1) if norm.running_var_mode == "unbiased" else var
    new_mean = (1 - m) * running_mean + m * mu.detach()
    new_var = (1 - m) * running_var + m * running_var_of_batch.detach()
    penalty = None
    if hasattr(norm, "penalty_mean"):
        penalty = norm.penalty_mean * ((new_mean - mu) ** 2).sum()
        if norm.penalty_type == "diff":
            penalty = penalty + norm.penalty_var * (new_var - var).abs().sum()
        else:
            sigma = var.clamp_min(norm.eps).sqrt()
            penalty = penalty + norm.penalty_var * ((new_var.clamp_min(norm.eps).sqrt() - sigma) ** 2).sum()
    return y, new_mean, new_var, penalty


def _compare(name, x, pad, dtype, loss_of="output", **options):
    """One training step of our norm and of the formulas; every output and gradient must agree."""
    gen = torch.Generator().manual_seed(2)
    norm = build_norm(name, x.shape[-1], **options).to(dtype)
    with torch.no_grad():
        norm.running_mean.uniform_(-1, 1, generator=gen), norm.running_var.uniform_(0.5, 2, generator=gen)
        if norm.weight is not None:
            norm.weight.uniform_(0.5, 1.5, generator=gen), norm.bias.normal_(generator=gen)
    x = x.to(dtype)
    upstream = torch.randn(x.shape, dtype=torch.float64, generator=gen)
    ref_x = x.double().clone().requires_grad_(True)
    ref_params = [p.detach().double().requires_grad_(True) for p in norm.parameters()]
    weight, bias = ref_params if ref_params else (None, None)
    running = norm.running_mean.double(), norm.running_var.double()
    y_ref, mean_ref, var_ref, penalty_ref = _authors_formulas(ref_x, pad, norm, weight, bias, *running)

    ours_x = x.clone().requires_grad_(True)
    y = norm(ours_x, pad)
    loss = (y.double() * upstream).sum() if loss_of != "penalty" else 0
    loss_ref = (y_ref * upstream).sum() if loss_of != "penalty" else 0
    if loss_of != "output":
        loss, loss_ref = loss + norm.penalty().double(), loss_ref + penalty_ref
    loss.backward()
    loss_ref.backward()

    tol = {"rtol": 1e-6, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    # a float32 gradient is a sum over ~100 tokens of float32 products: n·2⁻²⁴ ≈ 1e-5 of its scale
    grad_tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else tol
    check = {"y": (y, y_ref), "running_mean": (norm.running_mean, mean_ref),
             "running_var": (norm.running_var, var_ref), "dx": (ours_x.grad, ref_x.grad)}
    if penalty_ref is not None:
        check["penalty"] = (norm.penalty(), penalty_ref)
    if weight is not None:
        check |= {"dw": (norm.weight.grad, weight.grad), "db": (norm.bias.grad, bias.grad)}
    for label, (ours, ref) in check.items():
        assert torch.isfinite(ours).all(), label
        ref = torch.zeros_like(ours, dtype=torch.float64) if ref is None else ref.detach()  # not reached by the loss
        torch.testing.assert_close(ours.double(), ref, **(grad_tol if label.startswith("d") else tol),
                                   msg=lambda m, label=label: f"{name} {label}: {m}")


@pytest.mark.parametrize("name", ["bn", "rbn"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("padded", [False, True])
def test_equals_the_authors_formulas(name, dtype, padded):
    x = torch.randn(7, 13, 24, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 + 0.5
    pad = random_padding(7, 13, torch.Generator().manual_seed(1)) if padded else None
    if padded:
        x[pad] = 50.0  # garbage at padding: weighted by 0 in every statistic
    options = {"penalty_mean": 0.3, "penalty_var": 0.05} if name == "rbn" else {}
    _compare(name, x, pad, dtype, "both" if name == "rbn" else "output", **options)


@pytest.mark.parametrize(
    ("name", "loss_of", "options"),
    [
        ("bn", "output", {"affine": False}),
        ("bn", "output", {"eps_mode": "add", "running_var": "unbiased"}),
        ("rbn", "penalty", {"penalty_mean": 0.3, "penalty_var": 0.05}),  # only the statistics get a gradient
        ("rbn", "both", {"penalty_mean": 0.3, "penalty_var": 0.05, "penalty_type": "diff2", "affine": False}),
    ],
)
def test_equals_the_authors_formulas_for_every_option(name, loss_of, options):
    x = torch.randn(5, 11, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 3 - 1
    _compare(name, x, random_padding(5, 11, torch.Generator().manual_seed(4)), torch.float64, loss_of, **options)


def test_channels_below_eps_take_the_clamp_forward_and_backward():
    # batch variance below eps: sqrt(max(var, eps)) = sqrt(eps), and no gradient through the variance
    x = torch.randn(4, 6, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    x[..., :3] = 0.25 + 1e-4 * x[..., :3]
    _compare("bn", x, random_padding(4, 6, torch.Generator().manual_seed(6)), torch.float64)


@pytest.mark.parametrize("case", ["empty batch", "all padding"])
def test_batches_without_tokens_stay_finite(case):
    # no token to pool: the count clamps to 1, the statistics are 0, nothing is NaN
    x = torch.randn((0, 5, 8) if case == "empty batch" else (2, 3, 8), dtype=torch.float64)
    pad = None if case == "empty batch" else torch.ones(2, 3, dtype=torch.bool)
    _compare("rbn", x, pad, torch.float64, "both", penalty_mean=0.3, penalty_var=0.05)
