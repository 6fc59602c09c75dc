"""Causal decoder-only Transformer for language modelling (tied input/output embeddings)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .options import ModelOptions


class CausalLM(nn.Module):
    def __init__(self, opts: ModelOptions, vocab_size: int, pad_id: int):
        super().__init__()
        self.embed = opts.token_embedding(vocab_size, pad_id)
        self.decoder = opts.studied_stack(causal=True)

    def forward(self, tokens: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Next-token logits (batch, time, vocab)."""
        return F.linear(self.decoder(self.embed(tokens), pad_mask), self.embed.weight)
