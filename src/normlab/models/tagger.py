"""Transformer encoder for sequence labelling: one label per token (NER, POS)."""

from __future__ import annotations

import torch
from torch import nn

from .options import ModelOptions


class SequenceTagger(nn.Module):
    def __init__(self, opts: ModelOptions, vocab_size: int, pad_id: int, n_labels: int):
        super().__init__()
        self.embed = opts.token_embedding(vocab_size, pad_id)
        self.encoder = opts.studied_stack()
        self.head = opts.head(opts.d_model, n_labels)

    def forward(self, tokens: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Label logits (batch, time, n_labels)."""
        return self.head(self.encoder(self.embed(tokens), pad_mask))
