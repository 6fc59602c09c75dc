"""Sequence classification: one label per token sequence; scored by accuracy.

Stored example: ``Examples(tokens=Sequences, labels=int64 array)``.
"""

from __future__ import annotations

import numpy as np
import torch

from normlab.models import SequenceClassifier

from ..examples import N_SPECIAL, Batch, Examples, Sequences, TaskData
from .base import SyntheticOptions, TextFamily


class Classification(TextFamily):
    name = "classification"
    model_class = SequenceClassifier
    data_options = (*TextFamily.data_options, "max_len")

    def select(self, split, index: np.ndarray, max_len: int | None) -> Examples:
        return Examples(tokens=Sequences.select(split.tokens, index, max_len=max_len),
                        labels=np.asarray(split.labels[index], dtype=np.int64))

    def task_data(self, train, splits: dict[str, object], info: dict) -> TaskData:
        task = super().task_data(train, splits, info)
        task.n_classes, task.label_names = len(train.label_names), list(train.label_names)
        return task

    def synthetic_examples(self, rng, seqs: list[np.ndarray], options: SyntheticOptions) -> Examples:
        """The class is the most frequent id bucket."""
        n_classes, n_regular = options.n_classes, options.vocab_size - N_SPECIAL
        labels = [int(np.bincount((s - N_SPECIAL) * n_classes // n_regular, minlength=n_classes).argmax())
                  for s in seqs]
        return Examples(tokens=Sequences.from_list(seqs), labels=np.asarray(labels, dtype=np.int64))

    def synthetic_task_data(self, splits: dict[str, object], options: SyntheticOptions) -> TaskData:
        return TaskData(self.name, splits, vocab_size=options.vocab_size, n_classes=options.n_classes)

    def collate(self, task: TaskData, split: str, indices: np.ndarray) -> Batch:
        examples = task.splits[split]
        tokens, pad_mask, n_tokens = self.padded_tokens(examples, indices, task.pad_id)
        labels = torch.from_numpy(examples.fields["labels"][np.asarray(indices)])
        return Batch(dict(tokens=tokens, pad_mask=pad_mask, labels=labels), len(indices), n_tokens,
                     np.asarray(indices))

    def model_sizes(self, task: TaskData) -> dict:
        return dict(vocab_size=task.vocab_size, pad_id=task.pad_id, n_classes=task.n_classes)

    def targets(self, batch: Batch) -> torch.Tensor:
        return batch.tensors["labels"]
