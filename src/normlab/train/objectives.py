"""The forward pass, the training loss and the evaluation of a model on a split, for any family.

What differs by family (inputs, targets, metrics, decoding) is asked of the family's class
(``normlab.train.families``); ``family`` arguments take a family object or its name.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from .examples import Batch, TaskData
from .families import Family, get_family

# eval.batch_stats: whether the final evaluation runs a second time with batch statistics
BATCH_STATS_MODES = ("auto", "always", "never")


def evaluates_with_batch_stats(mode: str, has_batch_stats: bool) -> bool:
    return mode == "always" or (mode == "auto" and has_batch_stats)


def forward(model: nn.Module, family: str | Family, batch: Batch) -> torch.Tensor:
    return get_family(family).forward(model, batch)


def training_loss(model: nn.Module, family: str | Family, batch: Batch, label_smoothing: float) -> torch.Tensor:
    """Label-smoothed cross-entropy, averaged over the batch's targets (tokens, sentences or images)."""
    return get_family(family).loss(model, batch, label_smoothing)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    task: TaskData,
    split: str,
    index_batches: list,
    device: torch.device,
    eval_cfg: dict,
    decode: bool = False,
    autocast: AbstractContextManager | None = None,
) -> dict:
    """Metrics of ``model`` on a split: loss (nats per target) and the family's metrics
    (:meth:`Family.evaluate <normlab.train.families.base.Family.evaluate>`, in eval mode).

    ``decode`` runs the family's decoding evaluation (translation: beam search and BLEU).
    """
    family = get_family(task.family)
    was_training = model.training
    model.eval()
    try:
        return family.evaluate(model, task, split, index_batches, device, eval_cfg, decode,
                               autocast or nullcontext())
    finally:
        model.train(was_training)

