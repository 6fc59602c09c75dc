"""Per-family forward pass, training loss and evaluation (one place for what differs by family)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from normlab import metrics

from .batching import Batch, collate
from .tasks import TaskData

IGNORE = -100


def _token_targets(batch: Batch, family: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets with padding set to IGNORE, and the pad mask of the positions predicted."""
    t = batch.tensors
    if family == "translation":
        pad = t["prev_pad"]
        return t["target"].masked_fill(pad, IGNORE), pad
    if family == "lm":
        return t["target"].masked_fill(t["pad_mask"], IGNORE), t["pad_mask"]
    return t["tags"].masked_fill(t["pad_mask"], IGNORE), t["pad_mask"]  # tagging


def forward(model: nn.Module, family: str, batch: Batch) -> torch.Tensor:
    t = batch.tensors
    if family == "translation":
        return model(t["src"], t["src_pad"], t["prev"], t["prev_pad"])
    if family == "image":
        return model(t["images"])
    return model(t["tokens"], t["pad_mask"])


def targets(family: str, batch: Batch) -> torch.Tensor:
    if family in ("classification", "image"):
        return batch.tensors["labels"]
    return _token_targets(batch, family)[0]


def training_loss(model: nn.Module, family: str, batch: Batch, label_smoothing: float) -> torch.Tensor:
    """Label-smoothed cross-entropy, averaged over the batch's targets (tokens, sentences or images)."""
    logits = forward(model, family, batch)
    return F.cross_entropy(
        logits.flatten(0, -2).float(),
        targets(family, batch).flatten(),
        ignore_index=IGNORE,
        label_smoothing=label_smoothing,
    )


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
    """Metrics of ``model`` on a split: loss (nats per target) and the family's metric.

    Sums stay on the device; one transfer at the end.  ``decode`` runs beam search and BLEU
    (translation only).
    """
    family = task.family
    was_training = model.training
    model.eval()
    nll = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    hypotheses, references, true_tags, pred_tags = [], [], [], []
    autocast = autocast or nullcontext()
    for indices in index_batches:
        batch = collate(task, split, indices).to(device)
        with autocast:
            logits = forward(model, family, batch).float()
        y = targets(family, batch)
        flat_logits, flat_y = logits.flatten(0, -2), y.flatten()
        nll += F.cross_entropy(flat_logits, flat_y, ignore_index=IGNORE, reduction="sum").double()
        keep = flat_y != IGNORE
        correct += ((flat_logits.argmax(-1) == flat_y) & keep).sum().double()
        count += batch.n_targets
        if family == "tagging" and task.tag_scheme == "iob2":
            names = task.label_names
            lengths = (~batch.tensors["pad_mask"]).sum(1).tolist()
            for row_true, row_pred, n in zip(y.tolist(), logits.argmax(-1).tolist(), lengths, strict=True):
                true_tags.append([names[i] for i in row_true[:n]])
                pred_tags.append([names[i] for i in row_pred[:n]])
        if decode and family == "translation":
            t = batch.tensors
            with autocast:
                hyps = model.beam_search(
                    t["src"],
                    t["src_pad"],
                    beam=eval_cfg["beam"],
                    lenpen=eval_cfg["lenpen"],
                    max_len_a=eval_cfg["max_len_a"],
                    max_len_b=eval_cfg["max_len_b"],
                )
            hypotheses += [task.detokenize(h) for h in hyps]
            references += [task.detokenize(task.splits[split][i][1].tolist()) for i in batch.indices]
    model.train(was_training)
    nll_sum, n_correct = nll.item(), correct.item()
    out = {"loss": nll_sum / max(count, 1), "n_targets": count}
    if family in ("translation", "lm"):
        out["ppl"] = metrics.perplexity(nll_sum, count)
    else:
        out["accuracy"] = n_correct / max(count, 1)
    if true_tags:
        out["f1"] = metrics.entity_f1(true_tags, pred_tags)
    if hypotheses:
        out.update(metrics.bleu(hypotheses, references, eval_cfg.get("bleu_tokenize", "13a")))
    return out


def primary_metric(family: str, tag_scheme: str = "tags") -> str:
    """The metric a family's tables report."""
    if family == "translation":
        return "bleu"
    if family == "lm":
        return "ppl"
    if family == "tagging" and tag_scheme == "iob2":
        return "f1"
    return "accuracy"
