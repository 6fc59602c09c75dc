"""PowerNorm (Shen et al., ICML 2020) and its vanilla variant PN-V.

``powernorm`` follows the published algorithm and the authors' released code:

1. GroupScaling: each token is divided by the root mean square of its features within each of
   ``groups`` groups (the authors use groups = number of attention heads; 0 turns it off, the
   paper's Algorithm 2 alone); ordinary autograd.
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
zero at padded positions (the code leaves −(1−α_b) ν x̂ / sqrt(ψ_B² + eps) there).

``pn_vanilla`` (PN-V) is BN without the mean: batch quadratic mean in training with ordinary
autograd, a running quadratic mean (``momentum``) at inference; no GroupScaling unless ``groups``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from .base import BatchStatNorm, as_stat_dtype, distributed_world, masked_square_sums


def group_scaling(x: torch.Tensor, groups: int, eps: float = 1e-5) -> torch.Tensor:
    """Divide each token by the RMS of its features within each of ``groups`` equal groups."""
    b, t, c = x.shape
    xg = as_stat_dtype(x).reshape(b, t, groups, c // groups)
    rms = (xg.square().mean(dim=-1, keepdim=True) + eps).sqrt()
    return (xg / rms).reshape(b, t, c)


class _PowerFunction(torch.autograd.Function):
    """y = γ ⊙ x/forward_scale + β with PowerNorm's approximate backward (step 4 above)."""

    @staticmethod
    def forward(ctx, x, weight, bias, forward_rms, batch_rms, ema_gz, keep, alpha_bkw, sync):
        z = x / forward_rms
        ctx.save_for_backward(z, weight, batch_rms, keep)
        # ν is a buffer that backward updates in place: keep a reference, not a saved (versioned) copy
        ctx.ema_gz, ctx.alpha_bkw, ctx.sync = ema_gz, alpha_bkw, sync
        return torch.addcmul(bias, z, weight)

    @staticmethod
    def backward(ctx, grad_y):
        z, weight, batch_rms, keep = ctx.saved_tensors
        ema_gz = ctx.ema_gz
        if keep is not None:
            grad_y = grad_y * keep
        g = grad_y * weight
        g_tilde = g - (1.0 - ctx.alpha_bkw) * ema_gz * z
        if keep is not None:
            g_tilde = g_tilde * keep
            count = keep.sum().to(z.dtype)
        else:
            count = z.new_tensor(float(z.shape[0] * z.shape[1]))
        gz_sum = (g_tilde * z).sum(dim=(0, 1))
        if ctx.sync and distributed_world():
            packed = torch.cat([gz_sum, count.view(1)])
            dist.all_reduce(packed)
            gz_sum, count = packed[:-1], packed[-1]
        ema_gz.add_(gz_sum / count.clamp_min(1.0))
        grad_x = g_tilde / batch_rms
        grad_w = (grad_y * z).sum(dim=(0, 1))
        grad_b = grad_y.sum(dim=(0, 1))
        return grad_x, grad_w, grad_b, None, None, None, None, None, None


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
        sync: bool = True,
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
        with torch.no_grad():
            sum_sq, count = masked_square_sums(x, pad_mask, sync=self.sync)
            phi_batch = sum_sq / count
        batch_rms = (phi_batch + self.eps).sqrt()
        self.batch_var = phi_batch
        if not self.training:  # eval with batch statistics: exact normalisation, no update
            return torch.addcmul(self.bias, x / batch_rms, self.weight)
        self._iters += 1
        self.iters.fill_(self._iters)
        step = self._iters
        forward_rms = batch_rms if step <= self.warmup_iters else (self.running_phi + self.eps).sqrt()
        keep = None if pad_mask is None else (~pad_mask).unsqueeze(-1).to(x.dtype)
        y = _PowerFunction.apply(
            x, self.weight, self.bias, forward_rms, batch_rms, self.ema_gz, keep, self.alpha_bkw, self.sync
        )
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
        self, dim: int, momentum: float = 0.05, eps: float = 1e-5, groups: int = 0, sync: bool = True
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
