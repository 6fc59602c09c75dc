"""Masked BatchNorm for sequences and Regularized BN (Wang, Wu, Huang, NeurIPS 2022).

Semantics follow the authors' released ``MaskBatchNorm3d``:

* training: per-channel mean and **biased** variance pooled over the non-pad tokens of the whole
  batch (all processes, when distributed); the running mean/var move towards them with
  ``momentum`` (0.05); the output uses the batch statistics;
* inference: the running (population) statistics; the batch composition is irrelevant;
* ``eps`` is a clamp, ``sqrt(max(var, eps))`` (``eps_mode="clamp"``), and the running variance is
  the biased one (``running_var="biased"``).  ``eps_mode="add"`` and ``running_var="unbiased"`` give
  ``torch.nn.BatchNorm1d``'s conventions instead.
* running statistics start at mean 0, var 1; gain 1, bias 0.
* ``kernel``: ``"fused"`` runs the training passes in the C kernel of :mod:`normlab.norms.fused`
  (CPU, float32/64: 4 passes over memory and the per-channel steps in two calls each way, instead of
  eager PyTorch's ~13 passes and ~40 small ops); ``"eager"`` in PyTorch ops
  (any device); ``"auto"`` (default) takes the fused kernel where it applies and can be built, and
  otherwise eager, with one warning saying why.  Both compute the same sums in a different order:
  results agree to round-off.

Outputs at padded positions are not re-masked (they are excluded downstream by the attention key
mask and the loss mask), as in the authors' code.
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
from torch import nn

from . import fused as fused_kernel
from .base import BatchStatNorm, as_stat_dtype, distributed_world

EPS_MODES = ("clamp", "add")
RUNNING_VAR_MODES = ("biased", "unbiased")
PENALTY_TYPES = ("diff", "diff2")
KERNELS = ("auto", "fused", "eager")


def inverse_std(var: torch.Tensor, eps: float, clamp: bool) -> torch.Tensor:
    """1/sqrt(max(var, eps)) (the authors' clamp) or 1/sqrt(var + eps) (PyTorch's)."""
    return var.clamp_min(eps).rsqrt() if clamp else (var + eps).rsqrt()


class _BatchNormWithBatchStats(torch.autograd.Function):
    """y = (x − μ_B) / sqrt(clamp(σ_B², eps) or σ_B² + eps) · w + b over the non-pad tokens.

    Returns (y, μ_B, σ_B², count); y, μ_B and σ_B² are differentiable (RBN's penalty back-propagates
    through the statistics).  Values at padded positions must be finite (they are weighted by 0).
    The backward is written out (autograd over the same ops makes several times more passes over
    memory and large temporaries).  Derivation, with scale = w·inv, shift = b − μ·scale:
    ∂scale = Σ dy·x, ∂shift = Σ dy; ∂w = (∂scale − μ ∂shift)·inv; ∂inv = (∂scale − μ ∂shift)·w;
    ∂μ = −∂shift·scale (+ outer); ∂σ² = −½ inv³ ∂inv (+ outer); with σ² = S₂/n − μ², μ = S₁/n:
    ∂S₂ = ∂σ²/n, ∂S₁ = (∂μ − 2μ ∂σ²)/n, and ∂x = dy·scale + keep·(∂S₁ + 2x ∂S₂).
    When distributed, S₁, S₂, n are all-reduced forward and ∂S₁, ∂S₂ backward (as SyncBatchNorm).
    Two implementations of this arithmetic: ``_forward_eager``/``_backward_eager`` in PyTorch ops (any
    device), and ``_forward_fused``/``_backward_fused``, two calls each into ``masked_bn.c`` (its
    per-channel steps in double); tests/norms/test_fused_kernel.py holds them equal.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, pad_mask, eps, clamp, sync, fused):
        # autocast would run the matrix-vector sums in bf16: the statistics stay in float32
        with torch.autocast(x.device.type, enabled=False):
            x2 = as_stat_dtype(x).reshape(-1, x.shape[-1])
            ctx.eps, ctx.clamp, ctx.synced, ctx.fused = eps, clamp, sync and distributed_world(), fused
            ctx.shape, ctx.has_bias, ctx.x_dtype = x.shape, bias is not None, x.dtype
            ctx.set_materialize_grads(False)  # bn's statistics get no gradient: no zero tensors for them
            forward = _BatchNormWithBatchStats._forward_fused if fused else _BatchNormWithBatchStats._forward_eager
            y, mean, var, count = forward(ctx, x2, weight, bias, pad_mask)
            ctx.mark_non_differentiable(count)
            return y.reshape(x.shape), mean, var, count

    @staticmethod
    def _forward_fused(ctx, x2, weight, bias, pad_mask):
        x2 = x2.contiguous()
        pad = None if pad_mask is None else pad_mask.reshape(-1).contiguous()
        sums = fused_kernel.stats(x2, pad)  # [S₁, S₂, n] in float64
        if ctx.synced:
            dist.all_reduce(sums)
        y, chan = fused_kernel.normalize(x2, sums, weight, bias, ctx.eps, ctx.clamp)
        ctx.save_for_backward(x2, pad, weight, chan)
        count = sums[-1].clamp_min(1.0)
        ctx.count = float(count)
        return y, chan[0], chan[1], count.to(x2.dtype)

    @staticmethod
    def _forward_eager(ctx, x2, weight, bias, pad_mask):
        channels = x2.shape[1]
        keep = None if pad_mask is None else (~pad_mask).reshape(-1).to(x2.dtype)
        count = x2.new_tensor(float(x2.shape[0])) if keep is None else keep.sum()
        # Channel sums as plain sum(0), or a BLAS matrix-vector product with the 0/1 keep vector: on
        # CPU these are ~10x faster than var_mean / masked_fill / vecdot over the token dimension.
        # One (tokens, channels) buffer serves first for x² and then for y: on CPU a fresh large
        # tensor costs more in page faults than the arithmetic that fills it.
        y = torch.mul(x2, x2)
        if keep is None:
            sum_x, sum_sq = x2.sum(dim=0), y.sum(dim=0)
        else:
            sum_x, sum_sq = torch.matmul(keep, x2), torch.matmul(keep, y)
        if ctx.synced:
            packed = torch.cat([sum_x, sum_sq, count.view(1)])
            dist.all_reduce(packed)
            sum_x, sum_sq, count = packed[:channels], packed[channels:-1], packed[-1]
        count = count.clamp_min(1.0)
        mean = sum_x / count
        var = (sum_sq / count - mean.square()).clamp_min(0.0)  # biased; the clamp guards round-off
        inv = inverse_std(var, ctx.eps, ctx.clamp)
        scale = inv if weight is None else inv * weight
        shift = -mean * scale if bias is None else bias - mean * scale
        torch.addcmul(shift, x2, scale, out=y)
        ctx.save_for_backward(x2, keep, weight, mean, var, inv, scale, count)
        return y, mean, var, count

    @staticmethod
    def backward(ctx, dy, d_mean_out, d_var_out, _):
        # None: no gradient reached that output (set_materialize_grads(False))
        backward = _BatchNormWithBatchStats._backward_fused if ctx.fused else _BatchNormWithBatchStats._backward_eager
        d_x, d_weight, d_bias = backward(ctx, dy, d_mean_out, d_var_out)
        return d_x.reshape(ctx.shape).to(ctx.x_dtype), d_weight, d_bias, None, None, None, None, None

    @staticmethod
    def _backward_fused(ctx, dy, d_mean_out, d_var_out):
        x2, pad, weight, chan = ctx.saved_tensors
        dy2 = None if dy is None else dy.reshape(x2.shape).to(x2.dtype).contiguous()
        d_weight, d_bias, d_sums = fused_kernel.grad_stats(
            dy2, x2, chan, weight, d_mean_out, d_var_out, ctx.count, ctx.eps, ctx.clamp, ctx.has_bias
        )
        if ctx.synced:
            dist.all_reduce(d_sums)
        return fused_kernel.grad_input(dy2, x2, pad, chan, d_sums), d_weight, d_bias

    @staticmethod
    def _backward_eager(ctx, dy, d_mean_out, d_var_out):
        x2, keep, weight, mean, var, inv, scale, count = ctx.saved_tensors
        dy2 = torch.zeros_like(x2) if dy is None else dy.reshape(x2.shape).to(x2.dtype)
        d_x = torch.mul(dy2, x2)  # reused below for ∂x (see forward)
        d_scale, d_shift = d_x.sum(dim=0), dy2.sum(dim=0)
        d_scale_net = d_scale - mean * d_shift  # the gradient reaching inv·w
        d_weight = d_scale_net * inv if weight is not None else None
        d_bias = d_shift if ctx.has_bias else None
        d_inv = d_scale_net * weight if weight is not None else d_scale_net
        d_var = -0.5 * inv.pow(3) * d_inv
        if ctx.clamp:
            d_var = d_var * (var >= ctx.eps)
        if d_var_out is not None:
            d_var = d_var + d_var_out
        d_mean = -d_shift * scale if d_mean_out is None else d_mean_out - d_shift * scale
        d_sum_sq = d_var / count
        d_sum_x = (d_mean - 2.0 * mean * d_var) / count
        if ctx.synced:
            packed = torch.cat([d_sum_x, d_sum_sq])
            dist.all_reduce(packed)
            d_sum_x, d_sum_sq = packed[: x2.shape[1]], packed[x2.shape[1] :]
        torch.addcmul(d_sum_x, x2, 2.0 * d_sum_sq, out=d_x)
        if keep is not None:
            d_x.mul_(keep.unsqueeze(1))
        d_x.addcmul_(dy2, scale)
        return d_x, d_weight, d_bias


_WARNED: set[str] = set()


def _warn_eager_once(why: str) -> None:
    if why not in _WARNED:
        _WARNED.add(why)
        msg = f"bn/rbn use their eager kernel (slower on CPU); the fused one is unavailable: {why}"
        warnings.warn(msg, stacklevel=3)


class MaskedBatchNorm(BatchStatNorm):
    """``bn``: BatchNorm over the non-pad tokens of a (batch, time, dim) batch."""

    def __init__(
        self,
        dim: int,
        momentum: float = 0.05,
        eps: float = 1e-5,
        affine: bool = True,
        eps_mode: str = "clamp",
        running_var: str = "biased",
        sync: bool = True,
        kernel: str = "auto",
    ):
        super().__init__(dim, sync=sync)
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}; got {kernel!r}")
        if eps_mode not in EPS_MODES:
            raise ValueError(f"eps_mode must be one of {EPS_MODES}; got {eps_mode!r}")
        if running_var not in RUNNING_VAR_MODES:
            raise ValueError(f"running_var must be one of {RUNNING_VAR_MODES}; got {running_var!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1]; got {momentum}")
        self.momentum = momentum
        self.eps = eps
        self.eps_mode = eps_mode
        self.running_var_mode = running_var
        self.kernel = kernel
        self.weight = nn.Parameter(torch.ones(dim)) if affine else None
        self.bias = nn.Parameter(torch.zeros(dim)) if affine else None
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))
        self.batch_count: torch.Tensor | None = None

    def _fused(self, x: torch.Tensor) -> bool:
        """Whether this forward runs the fused C kernel (see ``kernel`` in the module docstring)."""
        if self.kernel == "eager":
            return False
        x32 = as_stat_dtype(x)
        if not fused_kernel.takes(x32):  # a GPU or another dtype: the eager path, by design
            if self.kernel == "fused":
                raise ValueError(f"kernel='fused' is for float32/64 on the CPU; got {x32.dtype} on {x.device}")
            return False
        ok, why = fused_kernel.available()
        if not ok:
            if self.kernel == "fused":
                raise fused_kernel.FusedKernelUnavailable(
                    f"kernel='fused': {why}. Install a C compiler with OpenMP (gcc) or use kernel='eager'."
                )
            _warn_eager_once(why)
        return ok

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor) -> None:
        if self.running_var_mode == "unbiased":
            var = var * count / (count - 1.0).clamp_min(1.0)
        self.running_mean.lerp_(mean, self.momentum)
        self.running_var.lerp_(var, self.momentum)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x, pad_mask)
        if self.uses_batch_stats():
            y, mean, var, count = _BatchNormWithBatchStats.apply(
                x, self.weight, self.bias, pad_mask, self.eps, self.eps_mode == "clamp", self.sync, self._fused(x)
            )
            self.batch_mean, self.batch_var, self.batch_count = mean.detach(), var.detach(), count
            if self.training:
                self._update_running(mean.detach(), var.detach(), count)
                self._after_training_statistics(mean, var)
            return y
        # inference: y = (x - mean) * inv_std * w + b, folded into one per-channel scale and shift.
        mean, var = self.running_mean, self.running_var
        scale = inverse_std(var, self.eps, self.eps_mode == "clamp")
        if self.weight is not None:
            scale = scale * self.weight
        shift = -mean * scale
        if self.bias is not None:
            shift = shift + self.bias
        return torch.addcmul(shift, as_stat_dtype(x), scale)

    def _after_training_statistics(self, mean: torch.Tensor, var: torch.Tensor) -> None:
        """Hook for RBN: called with the (differentiable) batch statistics after the running update."""

    def tid_statistics(self) -> dict[str, torch.Tensor | None]:
        return {
            "batch_mean": self.batch_mean,
            "batch_var": self.batch_var,
            "running_mean": self.running_mean,
            "running_var": self.running_var,
        }

    def extra_repr(self) -> str:
        return (
            f"{self.dim}, momentum={self.momentum}, eps={self.eps}, eps_mode={self.eps_mode}, "
            f"running_var={self.running_var_mode}, affine={self.weight is not None}, kernel={self.kernel}"
        )


class RegularizedBatchNorm(MaskedBatchNorm):
    """``rbn``: ``bn`` plus a penalty on the gap between the running and the batch statistics.

    ``penalty_type="diff"`` (the released recipes):  λμ·Σ_c(μ̂−μ_B)² + λσ·Σ_c|σ̂²−σ_B²|
    ``penalty_type="diff2"``:                          λμ·Σ_c(μ̂−μ_B)² + λσ·Σ_c(σ̂−σ_B)²

    μ̂, σ̂² are the running statistics *after* this batch's update (as in the authors' code) and are
    constants; the gradient flows only through the batch statistics μ_B, σ_B².  ``penalty()`` returns
    the term of the last training forward.

    **Scale of λ.**  The authors add Σ_layers penalty to the *token-summed* loss and then divide the
    gradient by the number of target tokens.  So the paper's coefficients (IWSLT14 Post-Norm λμ=60,
    λσ=0; Pre-Norm λμ=0.1, λσ=0.01) keep their meaning here only if a loop that uses the token-*mean*
    loss adds Σ penalty / n_tokens: use :func:`normlab.norms.regularization_loss`, which does exactly
    that.
    """

    def __init__(
        self,
        dim: int,
        penalty_mean: float = 0.0,
        penalty_var: float = 0.0,
        penalty_type: str = "diff",
        momentum: float = 0.05,
        eps: float = 1e-5,
        affine: bool = True,
        eps_mode: str = "clamp",
        running_var: str = "biased",
        sync: bool = True,
        kernel: str = "auto",
    ):
        super().__init__(dim, momentum, eps, affine, eps_mode, running_var, sync, kernel)
        if penalty_type not in PENALTY_TYPES:
            raise ValueError(f"penalty_type must be one of {PENALTY_TYPES}; got {penalty_type!r}")
        if penalty_mean < 0 or penalty_var < 0:
            raise ValueError("penalty_mean and penalty_var must be >= 0")
        self.penalty_mean = float(penalty_mean)
        self.penalty_var = float(penalty_var)
        self.penalty_type = penalty_type
        self._penalty: torch.Tensor | None = None

    def _after_training_statistics(self, mean: torch.Tensor, var: torch.Tensor) -> None:
        running_mean, running_var = self.running_mean.detach(), self.running_var.detach()  # constants
        term = mean.new_zeros(())
        if self.penalty_mean:
            term = term + self.penalty_mean * (running_mean - mean).square().sum()
        if self.penalty_var:
            if self.penalty_type == "diff":
                term = term + self.penalty_var * (running_var - var).abs().sum()
            else:
                sigma_b = var.clamp_min(self.eps).sqrt()
                sigma_run = running_var.clamp_min(self.eps).sqrt()
                term = term + self.penalty_var * (sigma_run - sigma_b).square().sum()
        self._penalty = term

    def penalty(self) -> torch.Tensor | None:
        return self._penalty

    def __getstate__(self):
        # the last penalty is part of an autograd graph: not state, and it would break deepcopy/pickle
        return {**super().__getstate__(), "_penalty": None}

    def extra_repr(self) -> str:
        return (
            super().extra_repr()
            + f", penalty_type={self.penalty_type}, penalty_mean={self.penalty_mean}, "
            f"penalty_var={self.penalty_var}"
        )
