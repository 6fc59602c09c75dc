"""RBN's penalty values and scale, and state_dict round trips for every norm."""

import pytest
import torch

from normlab.norms import build_norm, regularization_loss

from .helpers import ALL_NORMS, make_norm, random_padding


@pytest.mark.parametrize("kind", ["diff", "diff2"])
def test_rbn_penalty_value_uses_the_updated_running_statistics(kind):
    rbn = build_norm("rbn", 5, penalty_mean=60.0, penalty_var=0.5, penalty_type=kind)
    rbn(torch.randn(3, 4, 5))  # move running stats off their initial values
    old_mean, old_var = rbn.running_mean.clone(), rbn.running_var.clone()
    x, pad = torch.randn(6, 7, 5) * 2 + 1, random_padding(6, 7)
    rbn(x, pad)
    tokens = x[~pad]
    mu, var = tokens.mean(0), tokens.var(0, unbiased=False)
    run_mean, run_var = 0.95 * old_mean + 0.05 * mu, 0.95 * old_var + 0.05 * var
    torch.testing.assert_close(run_mean - mu, 0.95 * (old_mean - mu))  # the (1 − m) factor
    if kind == "diff":
        expected = 60 * ((run_mean - mu) ** 2).sum() + 0.5 * (run_var - var).abs().sum()
    else:
        expected = 60 * ((run_mean - mu) ** 2).sum() + 0.5 * ((run_var.sqrt() - var.sqrt()) ** 2).sum()
    torch.testing.assert_close(rbn.penalty(), expected, rtol=1e-4, atol=1e-6)


def test_rbn_without_coefficients_is_bn():
    torch.manual_seed(1)
    rbn, bn = build_norm("rbn", 4), build_norm("bn", 4)
    x = torch.randn(3, 5, 4)
    torch.testing.assert_close(rbn(x), bn(x))
    assert float(rbn.penalty()) == 0.0


def test_regularization_loss_divides_the_summed_penalties_by_the_loss_denominator():
    model = torch.nn.ModuleList([build_norm("rbn", 4, penalty_mean=1.0), build_norm("ln", 4),
                                 build_norm("rbn", 4, penalty_mean=2.0, penalty_var=1.0)])
    x = torch.randn(2, 3, 4) + 2
    for m in model:
        x = m(x)
    total = model[0].penalty() + model[2].penalty()
    torch.testing.assert_close(regularization_loss(model, 3600), total / 3600)
    assert regularization_loss(torch.nn.ModuleList([build_norm("bn", 4)]), 10) == 0.0


@pytest.mark.parametrize("name", ALL_NORMS)
def test_state_dict_round_trip(name):
    norm = make_norm(name, 8)
    for _ in range(3):
        y = norm(torch.randn(4, 5, 8) + 1)
        if y.requires_grad:
            y.square().sum().backward()
    fresh = make_norm(name, 8)
    fresh.load_state_dict(norm.state_dict())
    x = torch.randn(2, 3, 8)
    norm.eval(), fresh.eval()
    torch.testing.assert_close(fresh(x), norm(x))
    # and training continues identically (PowerNorm's step counter and ν included)
    norm.train(), fresh.train()
    x = torch.randn(4, 5, 8)
    torch.testing.assert_close(fresh(x), norm(x))
    for (k, a), b in zip(norm.state_dict().items(), fresh.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=k)
