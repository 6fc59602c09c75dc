"""Translation: an encoder–decoder learns the target sentence from the source; BLEU by beam search.

Stored example: ``Examples(source=Sequences, target=Sequences)`` (no BOS/EOS: the batch adds them).
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import numpy as np
import torch
from torch import nn

from normlab import metrics
from normlab.models import TranslationTransformer

from ..examples import N_SPECIAL, Batch, Examples, Sequences, TaskData
from .base import SyntheticOptions, TextFamily, token_targets


class Translation(TextFamily):
    name = "translation"
    model_class = TranslationTransformer
    score = "ppl"
    decodes = True

    def select(self, split, index: np.ndarray, max_len: int | None) -> Examples:
        return Examples(source=Sequences.select(split.tokens, index), target=Sequences.select(split.target, index))

    def task_data(self, train, splits: dict[str, object], info: dict) -> TaskData:
        task = super().task_data(train, splits, info)
        task.detokenize = train.decode
        return task

    def synthetic_examples(self, rng, seqs: list[np.ndarray], options: SyntheticOptions) -> Examples:
        """The target is the source reversed with every id shifted by one (a joined vocabulary)."""
        n_regular = options.vocab_size - N_SPECIAL
        targets = [(s[::-1] - N_SPECIAL + 1) % n_regular + N_SPECIAL for s in seqs]
        return Examples(source=Sequences.from_list(seqs), target=Sequences.from_list(targets))

    def synthetic_task_data(self, splits: dict[str, object], options: SyntheticOptions) -> TaskData:
        return TaskData(self.name, splits, vocab_size=options.vocab_size, detokenize=_synthetic_detokenize)

    def lengths(self, examples: Examples) -> np.ndarray:
        source, target = examples.fields["source"], examples.fields["target"]
        return np.maximum(source.lengths, target.lengths + 1)  # the target gets BOS (input) / EOS (output)

    def longest_prepared(self, longest: dict[str, int], max_len: int | None) -> int:
        return max(longest["tokens"], longest["target"] + 1)  # as lengths; max_len does not apply

    def collate(self, task: TaskData, split: str, indices: np.ndarray) -> Batch:
        examples = task.splits[split]
        source, target = examples.fields["source"], examples.fields["target"]
        pad = task.pad_id
        src, src_pad = source.padded(indices, pad)
        prev, prev_pad = target.padded(indices, pad, prefix=task.bos_id)
        out, _ = target.padded(indices, pad, suffix=task.eos_id)
        n_targets = int(target.lengths[indices].sum()) + len(indices)
        n_tokens = int(source.lengths[indices].sum()) + n_targets
        tensors = dict(src=src, src_pad=src_pad, prev=prev, prev_pad=prev_pad, target=out)
        return Batch(tensors, n_targets, n_tokens, np.asarray(indices))

    def model_sizes(self, task: TaskData) -> dict:
        return dict(vocab_size=task.vocab_size, pad_id=task.pad_id, bos_id=task.bos_id, eos_id=task.eos_id)

    def forward(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        t = batch.tensors
        return model(t["src"], t["src_pad"], t["prev"], t["prev_pad"])

    def targets(self, batch: Batch) -> torch.Tensor:
        return token_targets(batch.tensors["target"], batch.tensors["prev_pad"])

    def evaluation_extras(self, task: TaskData, split: str, eval_cfg: dict, decode: bool) -> list:
        return [BeamSearchBleu(task, split, eval_cfg)] if decode else []

    def primary_metric(self, tag_scheme: str = "tags") -> str:
        return "bleu"


class BeamSearchBleu:
    """Beam search on every batch, then corpus BLEU (sacreBLEU) of the detokenized hypotheses."""

    def __init__(self, task: TaskData, split: str, eval_cfg: dict):
        self.task, self.eval_cfg = task, eval_cfg
        self.target = task.splits[split].fields["target"]
        self.hypotheses: list[str] = []
        self.references: list[str] = []

    def add(self, model, batch: Batch, logits, targets, autocast: AbstractContextManager) -> None:
        t, cfg = batch.tensors, self.eval_cfg
        with autocast:
            hyps = model.beam_search(t["src"], t["src_pad"], beam=cfg["beam"], lenpen=cfg["lenpen"],
                                     max_len_a=cfg["max_len_a"], max_len_b=cfg["max_len_b"])
        self.hypotheses += [self.task.detokenize(h) for h in hyps]
        self.references += [self.task.detokenize(self.target[i].tolist()) for i in batch.indices]

    def result(self) -> dict:
        if not self.hypotheses:
            return {}
        return metrics.bleu(self.hypotheses, self.references, self.eval_cfg.get("bleu_tokenize", "13a"))


def _synthetic_detokenize(ids: list[int]) -> str:
    return " ".join(f"w{i}" for i in ids)
