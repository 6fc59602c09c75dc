"""Masked BatchNorm for sequences and Regularized BN (Wang, Wu, Huang, NeurIPS 2022).

Semantics follow the authors' released ``MaskBatchNorm3d``:

* training: per-channel mean and **biased** variance pooled over the non-pad tokens of the batch
  (of this process: per-GPU statistics as the authors' module; ``sync=True`` pools them over every
  process, as SyncBatchNorm); the running mean/var move towards them with
  ``momentum`` (0.05); the output uses the batch statistics;
* inference: the running (population) statistics; the batch composition is irrelevant;
* ``eps`` is a clamp, ``sqrt(max(var, eps))`` (``eps_mode="clamp"``), and the running variance is
  the biased one (``running_var="biased"``).  ``eps_mode="add"`` and ``running_var="unbiased"`` give
  ``torch.nn.BatchNorm1d``'s conventions instead.
* running statistics start at mean 0, var 1; gain 1, bias 0.
* one implementation in PyTorch ops for every device and dtype (float32 statistics at least, also
  under autocast): an autograd Function with a written-out backward (``_BatchNormWithBatchStats``).

Outputs at padded positions are not re-masked (they are excluded downstream by the attention key
mask and the loss mask), as in the authors' code.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from .base import BatchStatNorm, as_stat_dtype, distributed_world

EPS_MODES = ("clamp", "add")
RUNNING_VAR_MODES = ("biased", "unbiased")
PENALTY_TYPES = ("diff", "diff2")


def inverse_std(var: torch.Tensor, eps: float, clamp: bool) -> torch.Tensor:
    """1/sqrt(max(var, eps)) (the authors' clamp) or 1/sqrt(var + eps) (PyTorch's)."""
    return var.clamp_min(eps).rsqrt() if clamp else (var + eps).rsqrt()


class _BatchNormWithBatchStats(torch.autograd.Function):
    """y = (x − μ_B) / sqrt(clamp(σ_B², eps) or σ_B² + eps) · w + b over the non-pad tokens.

    Returns (y, μ_B, σ_B², count); y, μ_B and σ_B² are differentiable (RBN's penalty back-propagates
    through the statistics).  Values at padded positions must be finite (they are weighted by 0).
    The backward is written out: autograd over the same ops makes several times more passes over
    memory and large temporaries (measured in docs/benchmarks.md).  Derivation, with
    scale = w·inv, shift = b − μ·scale:
    ∂scale = Σ dy·x, ∂shift = Σ dy; ∂w = (∂scale − μ ∂shift)·inv; ∂inv = (∂scale − μ ∂shift)·w;
    ∂μ = −∂shift·scale (+ outer); ∂σ² = −½ inv³ ∂inv (+ outer); with σ² = S₂/n − μ², μ = S₁/n:
    ∂S₂ = ∂σ²/n, ∂S₁ = (∂μ − 2μ ∂σ²)/n, and ∂x = dy·scale + keep·(∂S₁ + 2x ∂S₂).
    When distributed with ``sync``, S₁, S₂, n are all-reduced forward and ∂S₁, ∂S₂ backward (as SyncBatchNorm).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, pad_mask, eps, clamp, sync):
        # autocast would run the matrix-vector sums in bf16: the statistics stay in float32
        with torch.autocast(x.device.type, enabled=False):
            x2 = as_stat_dtype(x).reshape(-1, x.shape[-1])
            channels = x2.shape[1]
            synced = sync and distributed_world()
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
            if synced:
                packed = torch.cat([sum_x, sum_sq, count.view(1)])
                dist.all_reduce(packed)
                sum_x, sum_sq, count = packed[:channels], packed[channels:-1], packed[-1]
            count = count.clamp_min(1.0)
            mean = sum_x / count
            var = (sum_sq / count - mean.square()).clamp_min(0.0)  # biased; the clamp guards round-off
            inv = inverse_std(var, eps, clamp)
            scale = inv if weight is None else inv * weight
            shift = -mean * scale if bias is None else bias - mean * scale
            torch.addcmul(shift, x2, scale, out=y)
            ctx.save_for_backward(x2, keep, weight, mean, var, inv, scale, count)
            ctx.eps, ctx.clamp, ctx.synced = eps, clamp, synced
            ctx.shape, ctx.has_bias, ctx.x_dtype = x.shape, bias is not None, x.dtype
            ctx.set_materialize_grads(False)  # bn's statistics get no gradient: no zero tensors for them
            ctx.mark_non_differentiable(count)
            return y.reshape(x.shape), mean, var, count

    @staticmethod
    def backward(ctx, dy, d_mean_out, d_var_out, _):
        # None: no gradient reached that output (set_materialize_grads(False))
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
        return d_x.reshape(ctx.shape).to(ctx.x_dtype), d_weight, d_bias, None, None, None, None


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
        sync: bool = False,
    ):
        super().__init__(dim, sync=sync)
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
        self.weight = nn.Parameter(torch.ones(dim)) if affine else None
        self.bias = nn.Parameter(torch.zeros(dim)) if affine else None
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))
        self.batch_count: torch.Tensor | None = None

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
                x, self.weight, self.bias, pad_mask, self.eps, self.eps_mode == "clamp", self.sync
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
            f"running_var={self.running_var_mode}, affine={self.weight is not None}"
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
        sync: bool = False,
    ):
        super().__init__(dim, momentum, eps, affine, eps_mode, running_var, sync)
        if penalty_type not in PENALTY_TYPES:
            raise ValueError(f"penalty_type must be one of {PENALTY_TYPES}; got {penalty_type!r}")
        if penalty_mean < 0 or penalty_var < 0:
            raise ValueError("penalty_mean and penalty_var must be >= 0")
        self.penalty_mean = float(penalty_mean)
        self.penalty_var = float(penalty_var)
        self.penalty_type = penalty_type
        self._penalty: torch.Tensor | None = None

    # Eager under torch.compile: torch 2.13's partitioner recomputes μ̂ − μ_B for the backward from the
    # running buffer, which the forward has updated in place by then, and scales the gradient by 1 − momentum
    # (tests/norms/test_compile.py).  One graph break per RBN layer.
    @torch.compiler.disable
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
