"""Per-token norms: LayerNorm and its family (Xu et al. 2019), RMSNorm, Dynamic Tanh, and the identity.

They act on each token alone (normalising it over its ``dim`` features; DyT squashes it element-wise),
so padding cannot change them; ``pad_mask`` is accepted for the common signature and checked, nothing
more.

Numerical conventions (all with the biased variance and ``sqrt(var + eps)``, as ``nn.LayerNorm``):
the AdaNorm authors' code uses the unbiased std and ``(std + eps)``, and the RBN authors' ``layer_1``
baseline the unbiased variance; at dim 512 the difference is below 0.1 % of the scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Norm, as_stat_dtype


class _RMSScale(torch.autograd.Function):
    """y = x / sqrt(mean(x²) + eps) · w over the last dimension (w optional), with a written-out backward.

    F.rms_norm is composite on the CPU (six ops and their autograd, thousands of fresh pages per call);
    this is one reduction and two element-wise passes forward, and two reductions (one a matrix-vector
    product) and five element-wise passes backward, with one large temporary each way.
    With r = (mean x² + eps)^-½, x̂ = x·r and g = dy·w:  ∂x = r·(g − x̂·mean(g·x̂)),  ∂w = Σ_tokens dy·x̂.
    Computed in float32 at least (under autocast too); y and ∂x come back in x's dtype.
    """

    @staticmethod
    def forward(ctx, x, weight, eps):
        with torch.autocast(x.device.type, enabled=False):
            x2 = as_stat_dtype(x).reshape(-1, x.shape[-1])
            r = torch.linalg.vector_norm(x2, dim=1, keepdim=True).square_().div_(x2.shape[1]).add_(eps).rsqrt_()
            y = torch.mul(x2, r)
            if weight is None:  # y is x̂: the backward takes it rather than recomputing it
                ctx.save_for_backward(y, r, None)
            else:
                ctx.save_for_backward(x2, r, weight)
                y.mul_(weight)
            ctx.shape, ctx.x_dtype = x.shape, x.dtype
            return y.view(x.shape).to(x.dtype)

    @staticmethod
    def backward(ctx, dy):
        saved, r, weight = ctx.saved_tensors
        with torch.autocast(saved.device.type, enabled=False):
            dy2 = dy.reshape(saved.shape).to(saved.dtype)
            xhat = saved if weight is None else torch.mul(saved, r)
            t = torch.mul(dy2, xhat)  # dy·x̂; its buffer is reused for ∂x
            if weight is None:
                d_weight, minus_mean_gx = None, t.sum(dim=1, keepdim=True).div_(-saved.shape[1])
                dx = torch.addcmul(dy2, xhat, minus_mean_gx, out=t)
            else:
                d_weight, minus_mean_gx = t.sum(dim=0), torch.mv(t, weight).div_(-saved.shape[1]).unsqueeze(1)
                dx = torch.mul(dy2, weight, out=t).addcmul_(xhat, minus_mean_gx)
            dx.mul_(r)
            return dx.view(ctx.shape).to(ctx.x_dtype), d_weight, None


def rms_scale(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """x / sqrt(mean over the last dimension of x² + eps), times ``weight`` when given."""
    return _RMSScale.apply(x, weight, eps)


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


class _DetachedLayerNorm(torch.autograd.Function):
    """ŷ = (x − μ)/σ (LN-simple's forward) with no gradient through μ and/or σ where they are detached.

    ∂x = (dy − [μ not detached]·mean(dy) − [σ not detached]·ŷ·mean(dy·ŷ)) / σ over the features: the
    derivative of ŷ with the detached statistic held constant (both detached: dy/σ).
    """

    @staticmethod
    def forward(ctx, x, eps, detach_mean, detach_std):
        y, _, rstd = torch.native_layer_norm(x, (x.shape[-1],), None, None, eps)
        ctx.save_for_backward(None if detach_std else y, rstd)
        ctx.detach_mean = detach_mean
        return y

    @staticmethod
    def backward(ctx, dy):
        y, rstd = ctx.saved_tensors
        dx = dy
        if not ctx.detach_mean:
            dx = dx - dy.mean(dim=-1, keepdim=True)
        if y is not None:
            dx = dx - y * (dy * y).mean(dim=-1, keepdim=True)
        return dx * rstd, None, None, None


class DetachNorm(Norm):
    """``detachnorm``: the LN-simple forward with no gradient through the mean and/or the std.

    ``detach_mean`` / ``detach_std`` pick which statistic is a "changeable constant"; both True is the
    paper's DetachNorm, one of them the paper's detach-μ-only / detach-σ-only ablations.  One fused
    LayerNorm forward and a written-out backward (``_DetachedLayerNorm``).
    """

    def __init__(self, dim: int, eps: float = 1e-5, detach_mean: bool = True, detach_std: bool = True):
        super().__init__(dim)
        self.eps = eps
        self.detach_mean = detach_mean
        self.detach_std = detach_std

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x, pad_mask)
        return _DetachedLayerNorm.apply(x, self.eps, self.detach_mean, self.detach_std)

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
        return y * y.detach().mul(-self.scale * self.k).add_(self.scale)  # y · C(1 − k·y), C(1 − k·y) constant

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
        return rms_scale(x, self.weight, self.eps)


class _DynamicTanh(torch.autograd.Function):
    """y = γ ⊙ tanh(α·x) + β with a written-out backward (autograd's makes five large temporaries).

    With t = tanh(α·x) and u = ∂y·γ·(1 − t²):  ∂x = α·u,  ∂α = Σ u·x,  ∂γ = Σ_tokens ∂y·t,  ∂β = Σ_tokens ∂y.
    """

    @staticmethod
    def forward(ctx, x, alpha, weight, bias):
        t = torch.mul(x, alpha).tanh_()
        ctx.save_for_backward(x, alpha, weight, t)
        return torch.addcmul(bias, t, weight)

    @staticmethod
    def backward(ctx, dy):
        x, alpha, weight, t = ctx.saved_tensors
        u = torch.mul(dy, t)  # ∂y·t, then u
        d_weight, d_bias = u.sum(dim=(0, 1)), dy.sum(dim=(0, 1))
        torch.mul(dy, weight, out=u)
        torch.ops.aten.tanh_backward.grad_input(u, t, grad_input=u)  # u·(1 − t²), in place
        d_alpha = torch.vdot(u.reshape(-1), x.reshape(-1).to(u.dtype))  # x may be bf16 under autocast
        return u.mul_(alpha), d_alpha, d_weight, d_bias


class DynamicTanh(Norm):
    """``dyt``: y = γ ⊙ tanh(α·x) + β (Zhu, Chen, He, LeCun, Liu 2025, "Transformers without Normalization").

    Not a normalisation: an element-wise squashing with one learnable scalar α (``alpha_init``, 0.5 as
    the paper's default) and a per-channel gain γ (1) and bias β (0), meant to take LayerNorm's place.
    """

    def __init__(self, dim: int, alpha_init: float = 0.5):
        super().__init__(dim)
        self.alpha_init = float(alpha_init)
        self.alpha = nn.Parameter(torch.tensor(self.alpha_init))
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x, pad_mask)
        return _DynamicTanh.apply(x, self.alpha, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.dim}, alpha_init={self.alpha_init}"


class NoNorm(Norm):
    """``none``: the identity ("w/o Norm" in the AdaNorm paper)."""

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x, pad_mask)
        return x
