"""Per-token norms: LayerNorm and its family (Xu et al. 2019), RMSNorm, and the identity.

They normalise each token over its ``dim`` features, so padding cannot change them; ``pad_mask`` is
accepted for the common signature and checked, nothing more.

Numerical conventions (all with the biased variance and ``sqrt(var + eps)``, as ``nn.LayerNorm``):
the AdaNorm authors' code uses the unbiased std and ``(std + eps)``, and the RBN authors' ``layer_1``
baseline the unbiased variance; at dim 512 the difference is below 0.1 % of the scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Norm


class LayerNorm(Norm):
    """``ln``: standard LayerNorm with gain and bias."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__(dim)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x, pad_mask)
        return F.layer_norm(x, (self.dim,), self.weight, self.bias, self.eps)


class LayerNormSimple(Norm):
    """``ln_simple``: LayerNorm without gain and bias (Xu et al. 2019)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__(dim)
        self.eps = eps

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x, pad_mask)
        return F.layer_norm(x, (self.dim,), None, None, self.eps)


class DetachNorm(Norm):
    """``detachnorm``: the LN-simple forward with no gradient through the mean and/or the std.

    ``detach_mean`` / ``detach_std`` pick which statistic is a "changeable constant"; both True is the
    paper's DetachNorm, one of them the paper's detach-μ-only / detach-σ-only ablations.
    """

    def __init__(self, dim: int, eps: float = 1e-5, detach_mean: bool = True, detach_std: bool = True):
        super().__init__(dim)
        self.eps = eps
        self.detach_mean = detach_mean
        self.detach_std = detach_std

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x, pad_mask)
        mean = x.mean(dim=-1, keepdim=True)
        std = (x.var(dim=-1, unbiased=False, keepdim=True) + self.eps).sqrt()
        if self.detach_mean:
            mean = mean.detach()
        if self.detach_std:
            std = std.detach()
        return (x - mean) / std

    def extra_repr(self) -> str:
        return f"{self.dim}, detach_mean={self.detach_mean}, detach_std={self.detach_std}"


class AdaNorm(Norm):
    """``adanorm``: z = C · y · (1 − k · stopgrad(y)), y the LN-simple output (Xu et al. 2019).

    ``scale`` is C (2.0, the authors' released default and IWSLT script), ``k`` = 0.1 keeps the
    scaling φ(y) = C(1 − k y) positive for ≥ 99 % of entries.  φ is detached: the gradient flows
    through y (and so through the mean and std), with φ treated as a constant.
    """

    def __init__(self, dim: int, eps: float = 1e-5, scale: float = 2.0, k: float = 0.1):
        super().__init__(dim)
        self.eps = eps
        self.scale = scale
        self.k = k

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x, pad_mask)
        y = F.layer_norm(x, (self.dim,), None, None, self.eps)
        return y * (self.scale * (1.0 - self.k * y.detach()))

    def extra_repr(self) -> str:
        return f"{self.dim}, scale={self.scale}, k={self.k}"


class RMSNorm(Norm):
    """``rmsnorm``: x / sqrt(mean(x²) + eps) · g (Zhang & Sennrich 2019; eps 1e-8 as their code)."""

    def __init__(self, dim: int, eps: float = 1e-8):
        super().__init__(dim)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x, pad_mask)
        return F.rms_norm(x, (self.dim,), self.weight, self.eps)


class NoNorm(Norm):
    """``none``: the identity ("w/o Norm" in the AdaNorm paper)."""

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x, pad_mask)
        return x
