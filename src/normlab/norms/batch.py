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

Outputs at padded positions are not re-masked (they are excluded downstream by the attention key
mask and the loss mask), as in the authors' code.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import BatchStatNorm, as_stat_dtype, masked_channel_sums

EPS_MODES = ("clamp", "add")
RUNNING_VAR_MODES = ("biased", "unbiased")
PENALTY_TYPES = ("diff", "diff2")


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

    def _inv_std(self, var: torch.Tensor) -> torch.Tensor:
        if self.eps_mode == "clamp":
            return var.clamp_min(self.eps).rsqrt()
        return (var + self.eps).rsqrt()

    def _batch_moments(self, x, pad_mask):
        sum_x, sum_sq, count = masked_channel_sums(x, pad_mask, sync=self.sync)
        mean = sum_x / count
        var = (sum_sq / count - mean.square()).clamp_min(0.0)  # biased; clamp guards round-off
        return mean, var, count

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor) -> None:
        if self.running_var_mode == "unbiased":
            var = var * count / (count - 1.0).clamp_min(1.0)
        self.running_mean.lerp_(mean, self.momentum)
        self.running_var.lerp_(var, self.momentum)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x, pad_mask)
        if self.uses_batch_stats():
            mean, var, count = self._batch_moments(x, pad_mask)
            self.batch_mean, self.batch_var, self.batch_count = mean.detach(), var.detach(), count
            if self.training:
                self._update_running(mean.detach(), var.detach(), count)
                self._after_training_statistics(mean, var)
        else:
            mean, var = self.running_mean, self.running_var
        # y = (x - mean) * inv_std * w + b, folded into one per-channel scale and shift.
        scale = self._inv_std(var)
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
        sync: bool = True,
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

    def extra_repr(self) -> str:
        return (
            super().extra_repr()
            + f", penalty_type={self.penalty_type}, penalty_mean={self.penalty_mean}, "
            f"penalty_var={self.penalty_var}"
        )
