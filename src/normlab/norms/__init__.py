"""The norm registry: a name -> class mapping and ``build_norm(name, dim, **options)``.

Every norm is called as ``norm(x, pad_mask=None)``: ``x`` (batch, time, dim), ``pad_mask``
(batch, time), True at padding.  Padding never changes a statistic.

=============  ==========================================================================
name           what it is
=============  ==========================================================================
``ln``         LayerNorm with gain and bias
``ln_simple``  LayerNorm without gain and bias (Xu et al. 2019)
``detachnorm`` LN-simple forward, no gradient through mean / std (options to detach one)
``adanorm``    C·y·(1 − k·stopgrad(y)), y = LN-simple(x); C=2, k=0.1
``rmsnorm``    RMSNorm with gain
``dyt``        Dynamic Tanh, γ ⊙ tanh(α·x) + β, α a learnable scalar (Zhu et al. 2025); not a norm
``bn``         masked BatchNorm over non-pad tokens, as the RBN authors' code
``rbn``        ``bn`` + penalty on the batch-vs-running statistic gap (Wang et al. 2022)
``powernorm``  PowerNorm as published (Shen et al. 2020)
``pn_vanilla`` PN-V: batch quadratic-mean normalisation, ordinary autograd
``none``       identity
=============  ==========================================================================
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator

import torch
from torch import nn

from .base import BatchStatNorm, Norm
from .batch import MaskedBatchNorm, RegularizedBatchNorm
from .layer import AdaNorm, DetachNorm, DynamicTanh, LayerNorm, LayerNormSimple, NoNorm, RMSNorm
from .power import PowerNorm, PowerNormVanilla

NORMS: dict[str, type[Norm]] = {
    "ln": LayerNorm,
    "ln_simple": LayerNormSimple,
    "detachnorm": DetachNorm,
    "adanorm": AdaNorm,
    "rmsnorm": RMSNorm,
    "dyt": DynamicTanh,
    "bn": MaskedBatchNorm,
    "rbn": RegularizedBatchNorm,
    "powernorm": PowerNorm,
    "pn_vanilla": PowerNormVanilla,
    "none": NoNorm,
}


def norm_options(name: str) -> list[str]:
    """The keyword options ``build_norm(name, dim, ...)`` accepts."""
    params = inspect.signature(_norm_class(name).__init__).parameters
    return [p for p in params if p not in ("self", "dim")]


def _norm_class(name: str) -> type[Norm]:
    try:
        return NORMS[name]
    except KeyError:
        raise ValueError(f"unknown norm {name!r}; valid norms: {', '.join(NORMS)}") from None


def build_norm(name: str, dim: int, **options) -> Norm:
    """Build the norm called ``name`` over ``dim`` features; unknown names or options raise ValueError."""
    cls = _norm_class(name)
    valid = norm_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"norm {name!r} does not take option(s) {', '.join(unknown)}; "
            f"valid options: {', '.join(valid) or '(none)'}"
        )
    return cls(dim, **options)


def regularization_loss(model: nn.Module, loss_denominator: int | float | torch.Tensor) -> torch.Tensor | float:
    """Σ of every norm's ``penalty()`` divided by the count the task loss is averaged over.

    The RBN authors add the penalties to the token-*summed* loss and divide by the number of target
    tokens; a loop with a token-*mean* loss adds this term instead, so the paper's λ mean the same.
    Returns 0.0 when the model has no penalised norm.
    """
    terms = [p for m in model.modules() if isinstance(m, Norm) and (p := m.penalty()) is not None]
    if not terms:
        return 0.0
    return torch.stack(terms).sum() / loss_denominator


def batch_stat_norms(model: nn.Module) -> dict[str, BatchStatNorm]:
    """The batch-statistics norms of ``model`` by qualified module name (for TID and A1 evaluation)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, BatchStatNorm)}


@contextlib.contextmanager
def batch_stats_inference(model: nn.Module) -> Iterator[None]:
    """Within the block, eval-mode batch-statistics norms normalise with the batch's own statistics.

    Nothing is updated; used to evaluate a BN model "in train mode" at inference (claim A1).
    """
    norms = list(batch_stat_norms(model).values())
    previous = [m.eval_with_batch_stats for m in norms]
    for m in norms:
        m.eval_with_batch_stats = True
    try:
        yield
    finally:
        for m, prev in zip(norms, previous, strict=True):
            m.eval_with_batch_stats = prev


__all__ = [
    "NORMS",
    "AdaNorm",
    "BatchStatNorm",
    "DetachNorm",
    "DynamicTanh",
    "LayerNorm",
    "LayerNormSimple",
    "MaskedBatchNorm",
    "NoNorm",
    "Norm",
    "PowerNorm",
    "PowerNormVanilla",
    "RMSNorm",
    "RegularizedBatchNorm",
    "batch_stat_norms",
    "batch_stats_inference",
    "build_norm",
    "norm_options",
    "regularization_loss",
]
