"""Bad input gets an error that names the valid choices."""

import pytest
import torch

from normlab.norms import NORMS, build_norm, norm_options


def test_unknown_norm_name_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown norm 'batchnorm'.*ln, ln_simple.*rbn.*none"):
        build_norm("batchnorm", 8)


def test_unknown_option_lists_the_valid_options():
    with pytest.raises(ValueError, match="'ln' does not take option.*momentum.*valid options: eps"):
        build_norm("ln", 8, momentum=0.1)
    with pytest.raises(ValueError, match="penalty_type must be one of"):
        build_norm("rbn", 8, penalty_type="l1")
    with pytest.raises(ValueError, match="eps_mode must be one of"):
        build_norm("bn", 8, eps_mode="sqrt")
    with pytest.raises(ValueError, match="groups must divide"):
        build_norm("powernorm", 8, groups=3)
    assert "penalty_mean" in norm_options("rbn")


@pytest.mark.parametrize("name", list(NORMS))
def test_wrong_shapes_are_refused(name):
    norm = build_norm(name, 8)
    with pytest.raises(ValueError, match=r"\(batch, time\)"):
        norm(torch.randn(2, 3, 8), torch.zeros(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        norm(torch.randn(2, 3, 8), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\(batch, time, 8\)"):
        norm(torch.randn(2, 3, 7))
    with pytest.raises(ValueError, match=r"\(batch, time, 8\)"):
        norm(torch.randn(6, 8))
