"""Transformer encoder for sequence classification (mean over non-pad tokens, or the first token)."""

from __future__ import annotations

import torch
from torch import nn

from .options import ModelOptions


def masked_mean(h: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the time axis of (batch, time, dim), skipping padding."""
    if pad_mask is None:
        return h.mean(1)
    keep = (~pad_mask).unsqueeze(-1).to(h.dtype)
    return (h * keep).sum(1) / keep.sum(1).clamp_min(1.0)


class SequenceClassifier(nn.Module):
    def __init__(self, opts: ModelOptions, vocab_size: int, pad_id: int, n_classes: int):
        super().__init__()
        self.pooling = opts.pooling
        self.embed = opts.token_embedding(vocab_size, pad_id)
        self.encoder = opts.studied_stack()
        self.head = opts.head(opts.d_model, n_classes)

    def forward(self, tokens: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits (batch, n_classes)."""
        h = self.encoder(self.embed(tokens), pad_mask)
        pooled = h[:, 0] if self.pooling == "first" else masked_mean(h, pad_mask)
        return self.head(pooled)
