"""What every norm shares: the call signature, input checks, and masked per-channel statistics.

Every norm is called as ``norm(x, pad_mask=None)`` with ``x`` of shape (batch, time, dim) and
``pad_mask`` of shape (batch, time), True at padding.  Norms that normalise with batch statistics
(BN, RBN, PowerNorm) pool them over the non-pad tokens only, so padding never changes a statistic.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class Norm(nn.Module):
    """Base class: holds ``dim`` and checks the call's shapes."""

    def __init__(self, dim: int):
        super().__init__()
        if not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"{type(self).__name__}: dim must be a positive int, got {dim!r}")
        self.dim = dim

    def check_input(self, x: torch.Tensor, pad_mask: torch.Tensor | None) -> None:
        name = type(self).__name__
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"{name} expects x of shape (batch, time, {self.dim}); got {tuple(x.shape)}")
        if pad_mask is not None:
            if pad_mask.dtype != torch.bool:
                raise ValueError(f"{name}: pad_mask must be a bool tensor (True at padding); got {pad_mask.dtype}")
            if pad_mask.shape != x.shape[:2]:
                raise ValueError(
                    f"{name}: pad_mask must have shape (batch, time) = {tuple(x.shape[:2])}; "
                    f"got {tuple(pad_mask.shape)}"
                )

    def penalty(self) -> torch.Tensor | None:
        """Regularisation term of the last training forward (only RBN has one)."""
        return None

    def extra_repr(self) -> str:
        return f"{self.dim}"


def as_stat_dtype(x: torch.Tensor) -> torch.Tensor:
    """Statistics are computed in float32 at least (bf16/fp16 activations under autocast are upcast)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def distributed_world() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def masked_square_sums(
    x: torch.Tensor, pad_mask: torch.Tensor | None, *, sync: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel sum of squares and token count over the non-pad tokens, in float32 at least.

    With ``sync`` and ``torch.distributed`` initialised, both are all-reduced in one call with an
    autograd-aware all-reduce, so a batch split over processes gives the statistics (and gradients)
    of the whole batch on one process; without ``sync`` they are this process's.  (BN's sums live
    in its own autograd Function, ``batch.py``.)
    """
    x2 = as_stat_dtype(x).reshape(-1, x.shape[-1])
    with torch.autocast(x.device.type, enabled=False):  # autocast would run the product in bf16
        squares = x2.square()
        if pad_mask is None:
            sum_sq, count = squares.sum(dim=0), x2.new_tensor(float(x2.shape[0]))
        else:  # a matrix-vector product with the 0/1 keep vector: no masked copy of x (padding holds finite values)
            keep = (~pad_mask).reshape(-1).to(x2.dtype)
            sum_sq, count = torch.matmul(keep, squares), keep.sum()
    if sync and distributed_world():
        from torch.distributed.nn.functional import all_reduce  # autograd-aware

        packed = all_reduce(torch.cat([sum_sq, count.view(1)]))
        sum_sq, count = packed[:-1], packed[-1]
    return sum_sq, count.clamp_min(1.0)


class BatchStatNorm(Norm):
    """Base for norms that use batch statistics in training and running (population) ones at inference.

    Subclasses keep, after each forward that used batch statistics (every training forward, and
    eval forwards under ``eval_with_batch_stats``), detached copies of the batch statistics in
    ``batch_mean`` (None for norms without centring) and ``batch_var`` (the quantity whose square root
    divides: the variance for BN, the quadratic mean for PowerNorm), beside their running buffers.
    ``tid_statistics()`` hands both pairs to :mod:`normlab.tid`.

    ``sync``: under ``torch.distributed``, pool the batch statistics over every process (as
    SyncBatchNorm) instead of each process using its own batch's.  Off by default: the authors'
    ``MaskBatchNorm3d`` (and PowerNorm's released layer) compute per-GPU statistics, so a multi-GPU
    run normalises with each device's batch, as theirs did; ``sync: true`` is a norm option.

    ``eval_with_batch_stats``: when True, an eval-mode forward normalises with the statistics of the
    batch it is given (and updates nothing); used to evaluate a model "in train mode" (claim A1).
    """

    def __init__(self, dim: int, sync: bool = False):
        super().__init__(dim)
        self.sync = sync
        self.eval_with_batch_stats = False
        self.batch_mean: torch.Tensor | None = None
        self.batch_var: torch.Tensor | None = None

    def stat_features(self, x: torch.Tensor) -> torch.Tensor:
        """The features whose batch statistics this norm takes (its input, for BN), float32 at least."""
        return as_stat_dtype(x)

    def uses_batch_stats(self) -> bool:
        return self.training or self.eval_with_batch_stats

    def tid_statistics(self) -> dict[str, torch.Tensor | None]:
        """Last training batch's statistics and the running ones, for TID."""
        raise NotImplementedError
