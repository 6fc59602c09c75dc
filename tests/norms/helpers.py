"""Shared builders for the norm tests."""

import torch

from normlab.norms import NORMS, build_norm

# Options that make each norm exercise its interesting path in a few steps.
TEST_OPTIONS = {
    "rbn": {"penalty_mean": 0.5, "penalty_var": 0.2},
    "powernorm": {"groups": 2, "warmup_iters": 2},
    "pn_vanilla": {"groups": 2},
}


def make_norm(name: str, dim: int, **overrides) -> torch.nn.Module:
    return build_norm(name, dim, **(TEST_OPTIONS.get(name, {}) | overrides))


def random_padding(batch: int, time: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A (batch, time) pad mask with every row keeping at least one token."""
    lengths = torch.randint(1, time + 1, (batch,), generator=generator)
    return torch.arange(time).unsqueeze(0) >= lengths.unsqueeze(1)


ALL_NORMS = list(NORMS)
