"""Language modelling: a causal decoder predicts every next token; scored by perplexity.

Stored example: ``Sequences`` of sentence ids (the batch adds BOS in front of the input and EOS after
the target).  The prepared LM data end every sentence in ``<eos>``; it is dropped when loading and
``<eos>`` also serves as the BOS (as fairseq's LMs do).
"""

from __future__ import annotations

import numpy as np
import torch

from normlab.models import CausalLM

from ..examples import N_SPECIAL, Batch, Sequences, TaskData
from .base import SyntheticOptions, TextFamily, token_targets


class LanguageModeling(TextFamily):
    name = "lm"
    model_class = CausalLM
    score = "ppl"
    data_options = (*TextFamily.data_options, "max_len")
    data_families = ("lm", "lm_stream")  # PTB and WikiText-103 per sentence too

    def select(self, split, index: np.ndarray, max_len: int | None) -> Sequences:
        return Sequences.select(split.tokens, index, drop_last=1, max_len=max_len)

    def synthetic_examples(self, rng, seqs: list[np.ndarray], options: SyntheticOptions) -> Sequences:
        """Arithmetic progressions mod the vocabulary (step 1 or 2) from each sequence's first id."""
        n_regular = options.vocab_size - N_SPECIAL
        steps = rng.integers(1, 3, size=len(seqs))
        return Sequences.from_list([
            (s[0] - N_SPECIAL + step * np.arange(len(s))) % n_regular + N_SPECIAL
            for s, step in zip(seqs, steps, strict=True)
        ])

    def lengths(self, examples: Sequences) -> np.ndarray:
        return examples.lengths + 1

    def longest_prepared(self, longest: dict[str, int], max_len: int | None) -> int:
        stored = longest["tokens"] - 1  # select drops the stored <eos>, then cuts to max_len; BOS/EOS add one
        return min(stored, max_len or stored) + 1

    def collate(self, task: TaskData, split: str, indices: np.ndarray) -> Batch:
        sentences = task.splits[split]
        tokens, pad_mask = sentences.padded(indices, task.pad_id, prefix=task.bos_id)
        target, _ = sentences.padded(indices, task.pad_id, suffix=task.eos_id)
        n = int(sentences.lengths[indices].sum()) + len(indices)
        return Batch(dict(tokens=tokens, pad_mask=pad_mask, target=target), n, n, np.asarray(indices))

    def targets(self, batch: Batch) -> torch.Tensor:
        return token_targets(batch.tensors["target"], batch.tensors["pad_mask"])
