"""Adaptive input (Baevski & Auli 2019) and adaptive softmax (Grave et al. 2017), as Transformer-XL uses them.

The vocabulary is split at ``cutoffs`` into clusters of ids sorted by falling frequency (cluster 0,
the "shortlist", holds the most frequent words).  Cluster ``i`` works in dimension
``d_model // div_val**i``; a cluster narrower than ``d_model`` has a projection to/from ``d_model``.
With no cutoffs both sides reduce to a plain tied embedding and a full softmax.

* :class:`AdaptiveEmbedding` (input side): one table per cluster, projected to ``d_model`` where
  narrower, scaled by √d_model (as Transformer-XL).  Vectorised: every cluster is looked up for every
  token with a clamped index and the right one kept by ``torch.where`` (no ``nonzero``, no host sync).
* :class:`AdaptiveSoftmax` (output side): ``torch.nn.AdaptiveLogSoftmaxWithLoss`` when there are
  cutoffs, a full softmax otherwise.  Three changes to torch's module make it the Transformer-XL one:
  a tail cluster as wide as ``d_model`` (``div_val == 1``) has no projection (torch's would add a
  d×d matrix); every tail cluster has an output bias (torch's have none; Transformer-XL's output
  layers do); and with ``tie_to`` the weights are shared with the input side exactly where
  Transformer-XL shares them (``tie_weight``; ``tie_projs`` for the WikiText-103 tail clusters):

  =========================  ===============================================================
  output-side parameter      tied to (``tie_to``: the model's AdaptiveEmbedding)
  =========================  ===============================================================
  head, shortlist rows       input table of cluster 0                      (``tie_weight``)
  head, one row per cluster  own parameters (``cluster_weight``, as Transformer-XL)
  tail ``i`` output table    input table of cluster ``i + 1``              (``tie_weight``)
  tail ``i`` projection      input projection of cluster ``i + 1``, transposed use (``tie_projs``)
  biases                     own parameters, never tied
  =========================  ===============================================================

  One difference remains for ``div_val > 1`` only (not used by the base scripts): Transformer-XL also
  gives the shortlist a square d×d projection on each side; here the shortlist has none.

torch's adaptive softmax finds each cluster's rows with ``nonzero`` (a host sync per cluster per step),
and it runs in float32 here, outside autocast: under CPU autocast its log-softmax stays bf16 and its
float32 output buffer refuses it.  The full softmax (no cutoffs) runs under autocast as usual.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def cluster_bounds(vocab_size: int, cutoffs: tuple[int, ...] | list[int]) -> list[int]:
    """``[0, *cutoffs, vocab_size]`` after checking the cutoffs split the vocabulary."""
    cutoffs = [int(c) for c in cutoffs]
    if cutoffs != sorted(set(cutoffs)) or (cutoffs and (cutoffs[0] <= 0 or cutoffs[-1] >= vocab_size)):
        raise ValueError(f"cutoffs must be increasing, unique and inside (0, vocab_size={vocab_size}); got {cutoffs}")
    return [0, *cutoffs, vocab_size]


def cluster_dims(d_model: int, n_clusters: int, div_val: float) -> list[int]:
    """Width of each cluster: ``d_model // div_val**i`` (as Transformer-XL and torch's tails)."""
    if div_val < 1:
        raise ValueError(f"div_val must be >= 1; got {div_val}")
    dims = [int(d_model // (div_val**i)) for i in range(n_clusters)]
    if min(dims) < 1:
        raise ValueError(f"div_val={div_val} makes a cluster narrower than 1 with d_model={d_model}")
    return dims


class AdaptiveEmbedding(nn.Module):
    """Token ids (any shape) -> embeddings (…, d_model), scaled by √d_model.

    ``tables[i]``: cluster ``i``'s table (ids ``bounds[i]:bounds[i+1]``, width ``dims[i]``);
    ``projections[str(i)]``: (dims[i], d_model), only for clusters narrower than ``d_model``.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        cutoffs: tuple[int, ...] = (),
        div_val: float = 1.0,
        init_std: float = 0.02,
        proj_init_std: float = 0.01,
    ):
        super().__init__()
        self.d_model, self.vocab_size = d_model, vocab_size
        self.bounds = cluster_bounds(vocab_size, cutoffs)
        self.dims = cluster_dims(d_model, len(self.bounds) - 1, div_val)
        self.init_std, self.proj_init_std = init_std, proj_init_std
        self.tables = nn.ModuleList(
            nn.Embedding(hi - lo, dim) for lo, hi, dim in zip(self.bounds, self.bounds[1:], self.dims, strict=False)
        )
        self.projections = nn.ParameterDict(
            {str(i): nn.Parameter(torch.empty(dim, d_model)) for i, dim in enumerate(self.dims) if dim != d_model}
        )
        self.scale = math.sqrt(d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for table in self.tables:
            nn.init.normal_(table.weight, 0.0, self.init_std)
        for proj in self.projections.values():
            nn.init.normal_(proj, 0.0, self.proj_init_std)

    def projection(self, i: int) -> nn.Parameter | None:
        return self.projections[str(i)] if str(i) in self.projections else None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if len(self.tables) == 1 and not self.projections:
            return self.tables[0](ids) * self.scale
        out = None
        for i, table in enumerate(self.tables):
            lo, hi = self.bounds[i], self.bounds[i + 1]
            emb = table((ids - lo).clamp(0, hi - lo - 1))
            if (proj := self.projection(i)) is not None:
                emb = emb @ proj
            inside = ((ids >= lo) & (ids < hi)).unsqueeze(-1)
            out = emb if out is None else torch.where(inside, emb, out)
        return out * self.scale


class _TiedHead(nn.Module):
    """The head of the adaptive softmax with its shortlist rows shared with the input's cluster-0 table.

    Logits over (shortlist words, one entry per tail cluster), as torch's head ``Linear``.
    """

    def __init__(self, shortlist: nn.Parameter, n_clusters: int):
        super().__init__()
        self.shortlist_weight = shortlist  # shared Parameter (registered here too; parameters() dedups)
        d = shortlist.shape[1]
        self.cluster_weight = nn.Parameter(torch.empty(n_clusters, d))
        self.bias = nn.Parameter(torch.empty(shortlist.shape[0] + n_clusters))

    def reset_parameters(self, init_std: float = 0.02) -> None:
        nn.init.normal_(self.cluster_weight, 0.0, init_std)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, torch.cat([self.shortlist_weight, self.cluster_weight]), self.bias)


class AdaptiveSoftmax(nn.Module):
    """Hidden states (N, d_model) -> per-token NLL (``nll``) or full log-probabilities (``log_prob``).

    No cutoffs: a full softmax ``log_softmax(h Wᵀ + b)`` (``W`` the input table when tied).
    Cutoffs: ``torch.nn.AdaptiveLogSoftmaxWithLoss`` (``self.asm``) with the changes listed in the
    module docstring.  ``tie_to``: the AdaptiveEmbedding to share weights with (same cutoffs/div_val);
    ``tie_projections``: share the tail projections too.
    """

    def __init__(
        self,
        d_model: int,
        vocab_size: int,
        cutoffs: tuple[int, ...] = (),
        div_val: float = 1.0,
        tie_to: AdaptiveEmbedding | None = None,
        tie_projections: bool = True,
        init_std: float = 0.02,
        proj_init_std: float = 0.01,
    ):
        super().__init__()
        self.bounds = cluster_bounds(vocab_size, cutoffs)
        self.dims = cluster_dims(d_model, len(self.bounds) - 1, div_val)
        self.vocab_size, self.init_std, self.proj_init_std = vocab_size, init_std, proj_init_std
        if tie_to is not None and (tie_to.bounds != self.bounds or tie_to.dims != self.dims):
            raise ValueError("tie_to must have the same vocabulary, cutoffs and div_val as the softmax")
        self.asm = None
        if len(self.bounds) == 2:  # one cluster: full softmax
            self.weight = (
                tie_to.tables[0].weight if tie_to is not None else nn.Parameter(torch.empty(vocab_size, d_model))
            )
            self.bias = nn.Parameter(torch.empty(vocab_size))
        else:
            self.asm = nn.AdaptiveLogSoftmaxWithLoss(d_model, vocab_size, list(cutoffs), div_value=float(div_val))
            for i, tail in enumerate(self.asm.tail):
                dim, n_words = self.dims[i + 1], self.bounds[i + 2] - self.bounds[i + 1]
                if dim == d_model:
                    tail[0] = nn.Identity()
                tail[1] = nn.Linear(dim, n_words, bias=True)
                if tie_to is not None:
                    tail[1].weight = tie_to.tables[i + 1].weight
                    if tie_projections and (proj := tie_to.projection(i + 1)) is not None:
                        tail[0].weight = proj  # (dim, d_model): the input uses e @ P, the output h @ Pᵀ
            if tie_to is not None:
                self.asm.head = _TiedHead(tie_to.tables[0].weight, len(self.bounds) - 2)
            else:
                self.asm.head = nn.Linear(d_model, self.bounds[1] + len(self.bounds) - 2, bias=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Transformer-XL's initialisation: weights N(0, init_std), projections N(0, proj_init_std),
        biases 0.  Shared tensors get the same distribution from either side."""
        if self.asm is None:
            nn.init.normal_(self.weight, 0.0, self.init_std)
            nn.init.zeros_(self.bias)
            return
        head = self.asm.head
        if isinstance(head, _TiedHead):
            nn.init.normal_(head.shortlist_weight, 0.0, self.init_std)
            head.reset_parameters(self.init_std)
        else:
            nn.init.normal_(head.weight, 0.0, self.init_std)
            nn.init.zeros_(head.bias)
        for proj, out in self.asm.tail:
            if isinstance(proj, nn.Linear):
                nn.init.normal_(proj.weight, 0.0, self.proj_init_std)
            nn.init.normal_(out.weight, 0.0, self.init_std)
            nn.init.zeros_(out.bias)

    def nll(self, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of each target (N,), in float32 at least."""
        hidden = _at_least_float32(hidden)
        if self.asm is None:
            return F.cross_entropy(F.linear(hidden, self.weight, self.bias), target, reduction="none")
        with torch.autocast(hidden.device.type, enabled=False):
            return -self.asm(hidden, target).output

    def log_prob(self, hidden: torch.Tensor) -> torch.Tensor:
        """Log-probabilities over the whole vocabulary (N, vocab_size)."""
        hidden = _at_least_float32(hidden)
        if self.asm is None:
            return F.log_softmax(F.linear(hidden, self.weight, self.bias), dim=-1)
        with torch.autocast(hidden.device.type, enabled=False):
            return self.asm.log_prob(hidden)


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()
