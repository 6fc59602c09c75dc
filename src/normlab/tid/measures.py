"""Training–Inference Discrepancy (TID) of batch-statistics norms, per layer: formulas and recorders.

Two forms, both from the RBN paper's material (the authors' lab tool and their released code):

* the paper's (norm-ratio) form, per batch, averaged over batches:
  ``mean_tid = ‖μ_B − μ̂‖₂ / ‖σ̂‖₂`` and ``var_tid = ‖σ_B − σ̂‖₂ / ‖σ̂‖₂``;
* the per-channel form the authors' code logs:
  ``mean_tid_channel = mean_c |μ̂_c − μ_B,c| / σ_B,c`` and ``var_tid_channel = mean_c |σ̂_c / σ_B,c − 1|``.

μ_B, σ_B are a batch's statistics, μ̂, σ̂ the running (population) ones that inference uses.  For
PowerNorm the "σ" is the root quadratic mean and there is no mean TID.

Two ways to measure:

* :class:`OnlineTIDRecorder`: the training loop calls ``record(step)`` every N steps, inside the
  training forwards (dropout on, as the authors log it); values stay on the device until ``flush()``,
  so recording never synchronises with the host;
* :func:`probe_tid`: K batches through a :func:`frozen` model (no parameter or running update), each
  batch's statistics vs the running statistics.  ``mode="train"`` (the default) runs the forwards as
  training does, dropout on, from a seeded generator; ``mode="eval"`` without dropout (a labelled
  variant: the running statistics were accumulated with dropout, so eval-mode batches are compared with
  statistics of other features).  ``normlab probe`` (:mod:`normlab.tid.probe`) builds its
  decomposition on the same :func:`frozen` forwards.

Both return tidy records: dicts with step, module, layer, position, kind, value (and method).
A raw TID means little on its own: at small scale it sits at the sampling floor ≈ 1/√tokens; the
probe measures that floor beside it.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from normlab.norms import BatchStatNorm, PowerNorm, batch_stat_norms
from normlab.norms.base import masked_square_sums

TID_KINDS = ("mean_tid", "var_tid", "mean_tid_channel", "var_tid_channel")
PROBE_MODES = ("train", "eval")  # how frozen forwards run: as in training (dropout on), or without dropout
_EPS = 1e-8  # as the authors' lab tool: guards an all-zero denominator only


def tid_from_statistics(
    batch_mean: torch.Tensor | None,
    batch_var: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor,
) -> torch.Tensor:
    """The four TIDs for statistics of shape (..., C); returns (..., 4) in :data:`TID_KINDS` order.

    Without a mean (PowerNorm) the two mean kinds are NaN.
    """
    sigma_b = batch_var.clamp_min(0).sqrt()
    sigma_run = running_var.clamp_min(0).sqrt()
    denom = torch.linalg.vector_norm(sigma_run, dim=-1) + _EPS
    var_tid = torch.linalg.vector_norm(sigma_b - sigma_run, dim=-1) / denom
    var_tid_channel = (sigma_run / (sigma_b + _EPS) - 1.0).abs().mean(dim=-1)
    if batch_mean is None:
        nan = torch.full_like(var_tid, math.nan)
        return torch.stack([nan, var_tid, nan, var_tid_channel], dim=-1)
    mean_gap = batch_mean - running_mean
    mean_tid = torch.linalg.vector_norm(mean_gap, dim=-1) / denom
    mean_tid_channel = (mean_gap.abs() / (sigma_b + _EPS)).mean(dim=-1)
    return torch.stack([mean_tid, var_tid, mean_tid_channel, var_tid_channel], dim=-1)


def describe_module(name: str) -> tuple[int | None, str]:
    """(layer index, position) from a qualified module name: 'encoder.layers.3.attn_norm' -> (3, 'attn_norm')."""
    parts = name.split(".")
    indices = [int(p) for p in parts if re.fullmatch(r"\d+", p)]
    words = [p for p in parts if not re.fullmatch(r"\d+", p)]
    return (indices[0] if indices else None), (words[-1] if words else name)


def _records(
    step: int, names: list[str], values: torch.Tensor, std: torch.Tensor | None = None, **extra: Any
) -> list[dict]:
    """Tidy rows from (layers, 4) host tensors; NaN kinds (no mean for PowerNorm) are left out."""
    rows = []
    for i, name in enumerate(names):
        layer, position = describe_module(name)
        for k, kind in enumerate(TID_KINDS):
            value = float(values[i, k])
            if math.isnan(value):
                continue
            row = dict(step=step, module=name, layer=layer, position=position, kind=kind, value=value)
            if std is not None:
                row["std"] = float(std[i, k])
            rows.append(row | extra)
    return rows


def _stacked_statistics(norms: dict[str, BatchStatNorm]) -> tuple[list[str], torch.Tensor] | None:
    """TIDs of every norm that has batch statistics, grouped so that each group is one vectorised call."""
    groups: dict[tuple, list[tuple[str, dict]]] = {}
    for name, m in norms.items():
        st = m.tid_statistics()
        if st["batch_var"] is None:
            continue
        key = (st["batch_mean"] is None, st["batch_var"].shape, st["batch_var"].device)
        groups.setdefault(key, []).append((name, st))
    if not groups:
        return None
    names, blocks = [], []
    for members in groups.values():
        names += [n for n, _ in members]
        stack = {k: None if members[0][1][k] is None else torch.stack([s[k] for _, s in members])
                 for k in ("batch_mean", "batch_var", "running_mean", "running_var")}
        blocks.append(tid_from_statistics(**stack))
    return names, torch.cat(blocks)


class OnlineTIDRecorder:
    """Records the TID of the last training batch of every batch-statistics norm, without host syncs.

    Call ``record(step)`` right after a training step (the norms hold that step's batch statistics and
    the running statistics it updated, the comparison the authors' code logs every step).
    """

    def __init__(self, model: nn.Module):
        self.norms = batch_stat_norms(model)
        self._pending: list[tuple[int, list[str], torch.Tensor]] = []

    def __bool__(self) -> bool:
        return bool(self.norms)

    @torch.no_grad()
    def record(self, step: int) -> None:
        stacked = _stacked_statistics(self.norms)
        if stacked is not None:
            self._pending.append((step, *stacked))

    def flush(self) -> list[dict]:
        """Move everything recorded so far to the host (one transfer) and return tidy records."""
        if not self._pending:
            return []
        host = torch.cat([v for _, _, v in self._pending]).float().cpu()
        rows, offset = [], 0
        for step, names, _ in self._pending:
            rows += _records(step, names, host[offset : offset + len(names)], method="online")
            offset += len(names)
        self._pending.clear()
        return rows


# --- frozen forwards -------------------------------------------------------------------------------


def normalises_with_running(norm: BatchStatNorm) -> bool:
    """Whether ``norm``'s next training forward normalises with its running statistic, not the batch's.

    Only PowerNorm does, once its warm-up is over (``iters >= warmup_iters``: the next step is past it).
    """
    return isinstance(norm, PowerNorm) and int(norm.iters) >= norm.warmup_iters


def _record_batch_quadratic_mean(norm: BatchStatNorm, args: tuple, kwargs: dict) -> None:
    """Pre-hook: the batch's ψ_B², computed as PowerNorm's training forward does, into ``batch_var``."""
    pad_mask = args[1] if len(args) > 1 else kwargs.get("pad_mask")
    sum_sq, count = masked_square_sums(norm.stat_features(args[0]), pad_mask, sync=norm.sync)
    norm.batch_var = sum_sq / count


def _cuda_devices(model: nn.Module) -> list[int]:
    tensors = [*model.parameters(), *model.buffers()]
    return sorted({t.device.index or 0 for t in tensors if t.device.type == "cuda"})


@contextlib.contextmanager
def frozen(model: nn.Module, mode: str = "train", seed: int | None = None) -> Iterator[None]:
    """Forwards that change nothing (no gradient, no parameter or running update), on batch statistics.

    ``mode="train"``: every module in training mode (dropout on: what the running statistics were
    accumulated with) except the batch-statistics norms, which run in eval mode with
    ``eval_with_batch_stats``: each batch normalised with its own statistics, nothing updated -- the
    training forward without its running update.  PowerNorm past its warm-up normalises with its
    running quadratic mean in training, so it does here too (its eval forward, which is that
    computation), while a pre-hook records the batch's ψ_B² as its training forward does.
    ``mode="eval"``: the whole model in eval mode (no dropout), every batch-statistics norm (PowerNorm
    included) on the batch's statistics.
    ``seed``: the global generator that dropout draws from is seeded for the block and restored after
    it, so the same seed gives the same dropout masks.  Every module's mode is restored on exit.
    """
    if mode not in PROBE_MODES:
        raise ValueError(f"probe mode must be one of {PROBE_MODES}; got {mode!r}")
    modes = [(m, m.training) for m in model.modules()]
    norms = list(batch_stat_norms(model).values())
    flags = [(m, m.eval_with_batch_stats) for m in norms]
    handles = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.no_grad())
        if seed is not None:
            stack.enter_context(torch.random.fork_rng(devices=_cuda_devices(model)))
            torch.manual_seed(seed)
        try:
            model.train(mode == "train")
            for m in norms:
                m.eval()
                on_running = mode == "train" and normalises_with_running(m)
                m.eval_with_batch_stats = not on_running
                if on_running:
                    handles.append(m.register_forward_pre_hook(_record_batch_quadratic_mean, with_kwargs=True))
            yield
        finally:
            for h in handles:
                h.remove()
            for m, flag in flags:
                m.eval_with_batch_stats = flag
            for m, training in modes:
                m.training = training


def probe_tid(
    model: nn.Module,
    batches: Iterable[Any],
    run_batch: Callable[[Any], Any],
    step: int | None = None,
    max_batches: int | None = None,
    mode: str = "train",
    seed: int = 0,
) -> list[dict]:
    """Offline TID: K batches through the :func:`frozen` model, each batch's statistics vs the running ones.

    ``run_batch(batch)`` performs the model's forward on one batch.  Every norm sees the batch
    statistics that training would produce at these weights (``mode="train"``: dropout on, from
    ``seed``); the records give, per layer, the TID averaged over the K batches (``value``), its
    standard deviation across them (``std``) and the ``probe_mode``.
    """
    norms = batch_stat_norms(model)
    if not norms:
        return []
    per_batch: list[torch.Tensor] = []
    names: list[str] = []
    with frozen(model, mode, seed):
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            run_batch(batch)
            stacked = _stacked_statistics(norms)
            if stacked is not None:
                names, values = stacked
                per_batch.append(values)
    if not per_batch:
        return []
    values = torch.stack(per_batch).float().cpu()  # (K, layers, 4)
    mean = values.mean(dim=0)
    std = values.std(dim=0, correction=1) if len(per_batch) > 1 else torch.zeros_like(mean)
    return _records(-1 if step is None else step, names, mean, std=std, method="probe",
                    n_batches=len(per_batch), probe_mode=mode)
