"""PowerNorm (Shen et al., ICML 2020) and its vanilla variant PN-V.

``powernorm`` follows the published algorithm and the authors' released code:

1. GroupScaling: each token is divided by the root mean square of its features within each of
   ``groups`` groups (the authors use groups = number of attention heads; 0 turns it off, the
   paper's Algorithm 2 alone); its exact gradient, as the released code's autograd.
2. Training forward: ψ_B² = mean of x² over the non-pad tokens (per channel).  For the first
   ``warmup_iters`` training steps x̂ = x / sqrt(ψ_B² + eps); after that x̂ = x / sqrt(ψ² + eps) with the
   *running* quadratic mean ψ² of the previous steps.  y = γ x̂ + β.
3. Running update: during warm-up ψ² first becomes the cumulative average of the ψ_B² seen so far;
   then, every step, ψ² ← α_f ψ² + (1 − α_f) ψ_B².
4. Approximate backward, with g = γ ⊙ ∂L/∂y and a running per-channel buffer ν (init 0):
   g̃ = g − (1 − α_b) ν ⊙ x̂;  ν ← ν + mean_tokens(g̃ ⊙ x̂);  ∂L/∂x = g̃ / sqrt(ψ_B² + eps).
   (Note the division by the *batch* ψ_B², as in the released code, even after warm-up.)
5. Inference: x̂ = x / sqrt(ψ² + eps), a per-channel affine map.

Two deliberate departures from the released code, both so that padding never changes anything:
the token mean for ν runs over non-pad tokens only (the code averages over pads too), and ∂L/∂x is
zero at padded positions (the code leaves −(1−α_b) ν x̂ / sqrt(ψ_B² + eps) there); ∂γ and ∂β sum
over the non-pad tokens.

Steps 2–4 are one autograd Function (``_PowerFunction``) whose backward is step 4 written out;
GroupScaling is :func:`normlab.norms.layer.rms_scale` without gain (its exact backward).

``pn_vanilla`` (PN-V) is BN without the mean: batch quadratic mean in training with ordinary
autograd, a running quadratic mean (``momentum``) at inference; no GroupScaling unless ``groups``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from .base import BatchStatNorm, as_stat_dtype, distributed_world, masked_square_sums
from .layer import rms_scale


def group_scaling(x: torch.Tensor, groups: int, eps: float = 1e-5) -> torch.Tensor:
    """Divide each token by the RMS of its features within each of ``groups`` equal groups.

    That is an RMSNorm without gain over each group (exact autograd, as the authors' code).
    """
    b, t, c = x.shape
    return rms_scale(as_stat_dtype(x).reshape(b, t * groups, c // groups), None, eps).reshape(b, t, c)


class _PowerFunction(torch.autograd.Function):
    """PowerNorm's training step: batch quadratic mean, y = γ ⊙ x/forward_rms + β, approximate backward.

    Returns (y, ψ_B²); ψ_B² carries no gradient.  The forward divides by the batch RMS (``use_batch``,
    warm-up) or by the running one; the backward is step 4 of the module docstring, with its sums taken
    over the non-pad tokens through the identities Σ g̃·x̂ = γ·Σ ∂y·x̂ − (1−α_b)ν·Σ x̂² and
    Σ x̂² = Σ x² / forward_rms², so that ∂x, ∂γ, ∂β and ν cost one temporary and four passes; x̂ is never
    stored (x̂ = x / forward_rms per channel).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, pad_mask, running_phi, ema_gz, use_batch, eps, alpha_bkw, sync):
        with torch.autocast(x.device.type, enabled=False):
            x2 = x.reshape(-1, x.shape[-1])
            channels = x2.shape[1]
            synced = sync and distributed_world()
            keep = None if pad_mask is None else (~pad_mask).reshape(-1).to(x2.dtype)
            count_local = x2.new_tensor(float(x2.shape[0])) if keep is None else keep.sum()
            y = torch.mul(x2, x2)  # x², then the output (one buffer: fresh pages cost more than arithmetic)
            sum_sq_local = y.sum(dim=0) if keep is None else torch.matmul(keep, y)
            sum_sq, count = sum_sq_local, count_local
            if synced:
                packed = torch.cat([sum_sq, count.view(1)])
                dist.all_reduce(packed)
                sum_sq, count = packed[:channels], packed[-1]
            phi_batch = sum_sq / count.clamp_min(1.0)
            forward_var = (phi_batch if use_batch else running_phi) + eps
            inv_forward = forward_var.rsqrt()
            torch.addcmul(bias, x2, weight * inv_forward, out=y)  # γ ⊙ x̂ + β with x̂ = x / forward_rms
            batch_rms = (phi_batch + eps).sqrt()
            ctx.save_for_backward(x2, weight, keep, inv_forward, batch_rms, sum_sq_local / forward_var, count_local)
            # ν is a buffer that backward updates in place: keep a reference, not a saved (versioned) copy
            ctx.ema_gz, ctx.alpha_bkw, ctx.synced, ctx.shape = ema_gz, alpha_bkw, synced, x.shape
            ctx.mark_non_differentiable(phi_batch)
            return y.view(x.shape), phi_batch

    @staticmethod
    def backward(ctx, dy, _):
        x2, weight, keep, inv_forward, batch_rms, sum_xhat2, count = ctx.saved_tensors
        dy2 = dy.reshape(x2.shape)
        grad_x = torch.mul(dy2, x2)  # ∂y·x (x̂ = x·inv_forward per channel), then ∂x
        if keep is None:
            grad_w, grad_b = grad_x.sum(dim=0), dy2.sum(dim=0)
        else:
            grad_w, grad_b = torch.matmul(keep, grad_x), torch.matmul(keep, dy2)
        grad_w = grad_w * inv_forward  # Σ ∂y·x̂
        nu_term = (1.0 - ctx.alpha_bkw) * ctx.ema_gz
        gz_sum = weight * grad_w - nu_term * sum_xhat2  # Σ over non-pad tokens of g̃·x̂
        if ctx.synced:
            packed = torch.cat([gz_sum, count.view(1)])
            dist.all_reduce(packed)
            gz_sum, count = packed[:-1], packed[-1]
        # ∂x = keep · (γ ⊙ ∂y − (1−α_b)ν ⊙ x̂) / ψ_B  (the batch RMS, as released)
        torch.mul(dy2, weight / batch_rms, out=grad_x).addcmul_(x2, nu_term * inv_forward / batch_rms, value=-1.0)
        if keep is not None:
            grad_x.mul_(keep.unsqueeze(1))
        ctx.ema_gz.add_(gz_sum / count.clamp_min(1.0))
        return grad_x.view(ctx.shape), grad_w, grad_b, None, None, None, None, None, None, None


class PowerNorm(BatchStatNorm):
    """``powernorm``: PowerNorm as published (GroupScaling, running quadratic mean, approximate backward)."""

    def __init__(
        self,
        dim: int,
        groups: int = 1,
        alpha_fwd: float = 0.9,
        alpha_bkw: float = 0.9,
        warmup_iters: int = 10000,
        eps: float = 1e-5,
        sync: bool = False,
    ):
        super().__init__(dim, sync=sync)
        if groups < 0 or (groups and dim % groups):
            raise ValueError(f"powernorm: groups must divide dim={dim} (0 = no GroupScaling); got {groups}")
        self.groups, self.alpha_fwd, self.alpha_bkw = groups, alpha_fwd, alpha_bkw
        self.warmup_iters, self.eps = warmup_iters, eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_phi", torch.ones(dim))
        self.register_buffer("ema_gz", torch.zeros(dim))
        self.register_buffer("iters", torch.zeros((), dtype=torch.long))
        self._iters = 0  # host copy of `iters`: the warm-up branch must not sync with the device

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._iters = int(self.iters)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x, pad_mask)
        x = self.stat_features(x)
        if not self.uses_batch_stats():
            return torch.addcmul(self.bias, x, (self.running_phi + self.eps).rsqrt() * self.weight)
        if not self.training:  # eval with batch statistics: exact normalisation, no update
            with torch.no_grad():
                sum_sq, count = masked_square_sums(x, pad_mask, sync=self.sync)
                self.batch_var = sum_sq / count
            return torch.addcmul(self.bias, x / (self.batch_var + self.eps).sqrt(), self.weight)
        self._iters += 1
        self.iters.fill_(self._iters)
        step = self._iters
        y, phi_batch = _PowerFunction.apply(
            x, self.weight, self.bias, pad_mask, self.running_phi, self.ema_gz, step <= self.warmup_iters,
            self.eps, self.alpha_bkw, self.sync,
        )
        self.batch_var = phi_batch
        with torch.no_grad():
            if step < self.warmup_iters:
                self.running_phi.mul_((step - 1) / step).add_(phi_batch / step)
            self.running_phi.lerp_(phi_batch, 1.0 - self.alpha_fwd)
        return y

    def stat_features(self, x: torch.Tensor) -> torch.Tensor:
        """GroupScaling first (when on): the statistics are those of the group-scaled input."""
        return as_stat_dtype(group_scaling(x, self.groups) if self.groups else x)

    def tid_statistics(self) -> dict[str, torch.Tensor | None]:
        return {"batch_mean": None, "batch_var": self.batch_var, "running_mean": None, "running_var": self.running_phi}

    def extra_repr(self) -> str:
        return (
            f"{self.dim}, groups={self.groups}, alpha_fwd={self.alpha_fwd}, alpha_bkw={self.alpha_bkw}, "
            f"warmup_iters={self.warmup_iters}, eps={self.eps}"
        )


class PowerNormVanilla(BatchStatNorm):
    """``pn_vanilla``: PN-V, batch quadratic-mean normalisation with ordinary autograd."""

    def __init__(
        self, dim: int, momentum: float = 0.05, eps: float = 1e-5, groups: int = 0, sync: bool = False
    ):
        super().__init__(dim, sync=sync)
        if groups and dim % groups:
            raise ValueError(f"pn_vanilla: groups must divide dim={dim}; got groups={groups}")
        self.momentum, self.eps, self.groups = momentum, eps, groups
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_phi", torch.ones(dim))

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x, pad_mask)
        x = self.stat_features(x)
        if self.uses_batch_stats():
            sum_sq, count = masked_square_sums(x, pad_mask, sync=self.sync)
            phi = sum_sq / count
            self.batch_var = phi.detach()
            if self.training:
                with torch.no_grad():
                    self.running_phi.lerp_(phi.detach(), self.momentum)
        else:
            phi = self.running_phi
        return torch.addcmul(self.bias, x, (phi + self.eps).rsqrt() * self.weight)

    def stat_features(self, x: torch.Tensor) -> torch.Tensor:
        """GroupScaling first (when on): the statistics are those of the group-scaled input."""
        return as_stat_dtype(group_scaling(x, self.groups) if self.groups else x)

    def tid_statistics(self) -> dict[str, torch.Tensor | None]:
        return {"batch_mean": None, "batch_var": self.batch_var, "running_mean": None, "running_var": self.running_phi}

    def extra_repr(self) -> str:
        return f"{self.dim}, momentum={self.momentum}, eps={self.eps}, groups={self.groups}"
