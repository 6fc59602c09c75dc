"""The interface of a task family, and what the text families share.

A family is one class, registered by name in ``normlab.train.families.FAMILIES``, that says all the
engine knows about a kind of task:

* data: how a split's examples are stored (:meth:`Family.select` from a prepared ``normlab.data``
  split, :meth:`Family.synthetic` for the built-in learnable toy task) and the ``TaskData`` built
  around them (:meth:`Family.task_data`);
* batches: each example's padded length for token-budget batching (:meth:`Family.lengths`), the
  fixed batches of a split (:meth:`Family.index_batches`) and the :class:`Batch` tensors
  (:meth:`Family.collate`);
* model: its class (``model_class``), the sizes the data decides (:meth:`Family.model_sizes`), the
  forward pass (:meth:`Family.forward`), the targets and the training loss;
* evaluation: the pass over a split (:meth:`Family.evaluate`: the loss and the sums of
  :meth:`Family.evaluation_sums`, batch by batch), what it reports beside the loss (``score``:
  accuracy or perplexity), extra evaluations (:meth:`Family.evaluation_extras`: BLEU decoding, entity
  F1) and the metric the tables report (:meth:`Family.primary_metric`, direction in
  ``normlab.metrics.HIGHER_IS_BETTER``);
* the run: what a run config adds to the data (:meth:`Family.for_run`: the segment geometry of a
  stream, a CRF's tag scheme and character ids), checks of the config (:meth:`Family.check_config`),
  the order an epoch visits the batches in (:meth:`Family.epoch_order`), and which prepared datasets
  the family reads (``data_families``).

Families hold no state: ``get_family(name)`` makes one wherever it is needed.  What a run carries
from step to step (a Transformer-XL memory) is the model's, in its ``state_dict``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from normlab import metrics
from normlab.models import ModelOptions, build_model

from ..examples import EOS, N_SPECIAL, Batch, TaskData, token_budget_batches

IGNORE = -100  # the target at positions the loss skips (padding)

# What the loss pass of an evaluation reports beside the loss, from its sums over the split: ``nll``
# (summed loss), ``count`` (the batches' n_targets), ``correct`` of ``predicted`` predictions.
SCORES: dict[str, Callable[[dict], float]] = {
    "accuracy": lambda s: s["correct"] / max(s["predicted"], 1),
    "ppl": lambda s: metrics.perplexity(s["nll"], s["count"]),
}


@dataclass(frozen=True)
class SyntheticOptions:
    """``data.options`` of a synthetic task besides the split sizes (each family uses what it needs)."""

    vocab_size: int = 32
    min_len: int = 3
    max_len: int = 12
    n_classes: int = 4
    image_size: int = 8


class EvaluationExtra(Protocol):
    """An evaluation beyond the loss pass, fed every batch of a split (e.g. decoding and BLEU)."""

    def add(self, model: nn.Module, batch: Batch, logits: torch.Tensor, targets: torch.Tensor,
            autocast: AbstractContextManager) -> None: ...

    def result(self) -> dict: ...


class Family(ABC):
    """One task family (see the module docstring).  Subclasses set ``name`` and ``model_class`` and
    implement the abstract methods."""

    name: ClassVar[str]
    model_class: ClassVar[type[nn.Module]]
    score: ClassVar[str] = "accuracy"  # a key of SCORES
    decodes: ClassVar[bool] = False  # has a decoding evaluation (the engine runs it on test)
    # the data.options of a prepared dataset of this family (their values: normlab.train.tasks.NORMLAB_DATA_OPTIONS)
    data_options: ClassVar[tuple[str, ...]] = ("cache", "max_examples", "max_eval_examples")
    # the prepared datasets (``normlab.data`` family) it reads; empty: the family's own name
    data_families: ClassVar[tuple[str, ...]] = ()
    # the family-specific ModelOptions it reads (normlab.models.options.FAMILY_MODEL_OPTIONS)
    model_keys: ClassVar[tuple[str, ...]] = ()

    # --- the run ------------------------------------------------------------------------------------

    def reads(self) -> tuple[str, ...]:
        """The ``normlab.data`` families whose prepared datasets this family trains on."""
        return self.data_families or (self.name,)

    def check_config(self, cfg: dict) -> None:
        """Raise ValueError for what a validated run config asks of this family that it cannot do."""
        return None

    def for_run(self, task: TaskData, cfg: dict) -> TaskData:
        """The task as a run with config ``cfg`` trains on it (the engine and ``load_run`` call this
        once, before making batches): what the run config adds to the data.  Default: unchanged."""
        return task

    def epoch_order(self, n_batches: int, seed: int, epoch: int) -> np.ndarray:
        """The order in which an epoch visits the fixed batches: a permutation drawn from (seed, epoch)."""
        return np.random.default_rng([seed, epoch]).permutation(n_batches)

    # --- data ---------------------------------------------------------------------------------------

    def select(self, split, index: np.ndarray, max_len: int | None) -> object:
        """The stored form of the examples ``index`` of a prepared ``normlab.data`` split
        (``max_len``: ``data.options.max_len``, for the families it applies to)."""
        raise ValueError(f"task family {self.name!r} has no normlab.data datasets; use data.source: synthetic")

    def task_data(self, train, splits: dict[str, object], info: dict) -> TaskData:
        """The ``TaskData`` of stored ``splits``, with the sizes and names of the prepared ``train`` split."""
        raise ValueError(f"task family {self.name!r} has no normlab.data datasets; use data.source: synthetic")

    @abstractmethod
    def synthetic(self, rng: np.random.Generator, sizes: dict[str, int], options: SyntheticOptions) -> TaskData:
        """A small learnable task, deterministic in ``rng``; ``sizes``: examples per split."""

    # --- batches ------------------------------------------------------------------------------------

    def lengths(self, examples) -> np.ndarray:
        """The padded length every example of a stored split occupies (for token-budget batching)."""
        raise NotImplementedError(f"family {self.name!r} has no lengths; override index_batches")

    def longest(self, examples) -> int | None:
        """The padded length of a stored split's longest example (what a token budget must hold); None
        for a family not batched by tokens."""
        return None

    def longest_prepared(self, longest: dict[str, int], max_len: int | None) -> int | None:
        """:meth:`longest` of examples selected from a prepared split, from the longest stored sequence of
        each of its fields (``longest``: field -> tokens, as the data card gives them) and
        ``data.options.max_len``."""
        return None

    def index_batches(
        self, examples, split: str, max_tokens: int, batch_size: int, seed: int, max_sentences: int | None
    ) -> list[np.ndarray]:
        """The fixed index batches of a stored split: token-budget batches of similar-length examples."""
        return token_budget_batches(self.lengths(examples), max_tokens, seed, max_sentences)

    @abstractmethod
    def collate(self, task: TaskData, split: str, indices: np.ndarray) -> Batch:
        """One batch of ``split`` made of the examples at ``indices``."""

    # --- the model ----------------------------------------------------------------------------------

    @abstractmethod
    def model_sizes(self, task: TaskData) -> dict:
        """The constructor arguments of ``model_class`` that the data decides."""

    def build_model(self, options: ModelOptions, task: TaskData) -> nn.Module:
        return build_model(self.model_class, options, **self.model_sizes(task))

    def forward(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """The logits of a batch: (B, T, classes) for token targets, (B, classes) for one per example."""
        t = batch.tensors
        return model(t["tokens"], t["pad_mask"])

    @abstractmethod
    def targets(self, batch: Batch) -> torch.Tensor:
        """Class ids matching the logits' leading dimensions, IGNORE where nothing is predicted."""

    def loss(self, model: nn.Module, batch: Batch, label_smoothing: float) -> torch.Tensor:
        """Label-smoothed cross-entropy, averaged over the batch's targets (tokens, sentences or images)."""
        logits = self.forward(model, batch)
        return F.cross_entropy(
            logits.flatten(0, -2).float(),
            self.targets(batch).flatten(),
            ignore_index=IGNORE,
            label_smoothing=label_smoothing,
        )

    # --- evaluation ---------------------------------------------------------------------------------

    def evaluate(
        self,
        model: nn.Module,
        task: TaskData,
        split: str,
        index_batches: list,
        device: torch.device,
        eval_cfg: dict,
        decode: bool,
        autocast: AbstractContextManager,
    ) -> dict:
        """Metrics of ``model`` (in eval mode, without gradients) on a split: the loss (per target) and
        the family's metrics.  Sums stay on the device; one transfer at the end."""
        sums = {k: torch.zeros((), dtype=torch.float64, device=device) for k in ("nll", "correct", "predicted")}
        count = 0
        extras = self.evaluation_extras(task, split, eval_cfg, decode)
        for indices in index_batches:
            batch = self.collate(task, split, indices).to(device)
            with autocast:
                logits = self.forward(model, batch).float()
            y = self.targets(batch)
            for key, value in zip(sums, self.evaluation_sums(model, batch, logits, y), strict=True):
                sums[key] += value.double()
            count += batch.n_targets
            for extra in extras:
                extra.add(model, batch, logits, y, autocast)
        totals = {key: value.item() for key, value in sums.items()} | {"count": count}
        out = {"loss": totals["nll"] / max(count, 1), "n_targets": count}
        out.update(self.scores(totals))
        for extra in extras:
            out.update(extra.result())
        return out

    def evaluation_sums(
        self, model: nn.Module, batch: Batch, logits: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(summed loss, correct predictions, predictions) of one evaluation batch, on the device; the
        loss is divided by the split's n_targets.  Default: cross-entropy and argmax over the targets."""
        flat_logits, flat_y = logits.flatten(0, -2), targets.flatten()
        keep = flat_y != IGNORE
        nll = F.cross_entropy(flat_logits, flat_y, ignore_index=IGNORE, reduction="sum")
        return nll, ((flat_logits.argmax(-1) == flat_y) & keep).sum(), keep.sum()

    def scores(self, sums: dict) -> dict:
        """What the evaluation reports beside the loss, from its sums (``SCORES``)."""
        return {self.score: SCORES[self.score](sums)}

    def evaluation_extras(self, task: TaskData, split: str, eval_cfg: dict, decode: bool) -> list[EvaluationExtra]:
        """Evaluations beyond the loss pass (``decode``: the decoding one, for a family that ``decodes``)."""
        return []

    def primary_metric(self, task: TaskData) -> str:
        """The metric the tables report for runs on ``task``."""
        return self.score


class TextFamily(Family):
    """A family whose inputs are token sequences with a pad mask, batched by a token budget."""

    data_options = (*Family.data_options, "length_range")

    def task_data(self, train, splits: dict[str, object], info: dict) -> TaskData:
        eos = train.eos_id if train.eos_id is not None else EOS
        return TaskData(self.name, splits, vocab_size=train.vocab_size, pad_id=train.pad_id,
                        bos_id=train.bos_id if train.bos_id is not None else eos, eos_id=eos, info=info)

    def synthetic(self, rng: np.random.Generator, sizes: dict[str, int], options: SyntheticOptions) -> TaskData:
        splits = {split: self.synthetic_examples(rng, random_sequences(rng, n, options), options)
                  for split, n in sizes.items()}
        return self.synthetic_task_data(splits, options)

    @abstractmethod
    def synthetic_examples(self, rng: np.random.Generator, seqs: list[np.ndarray], options: SyntheticOptions):
        """The stored examples of one synthetic split made from random id sequences ``seqs``."""

    def synthetic_task_data(self, splits: dict[str, object], options: SyntheticOptions) -> TaskData:
        return TaskData(self.name, splits, vocab_size=options.vocab_size)

    def model_sizes(self, task: TaskData) -> dict:
        return dict(vocab_size=task.vocab_size, pad_id=task.pad_id)

    def lengths(self, examples) -> np.ndarray:
        """The lengths of the field ``tokens`` (families whose inputs are their only sequences)."""
        return examples.fields["tokens"].lengths

    def longest(self, examples) -> int:
        lengths = self.lengths(examples)
        return int(lengths.max()) if len(lengths) else 0

    def longest_prepared(self, longest: dict[str, int], max_len: int | None) -> int:
        return min(longest["tokens"], max_len or longest["tokens"])  # select cuts to max_len

    @staticmethod
    def padded_tokens(examples, indices: np.ndarray, pad_id: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The field ``tokens`` of examples ``indices``: (B, T) ids, pad mask, and the non-pad count."""
        sequences = examples.fields["tokens"]
        tokens, pad_mask = sequences.padded(indices, pad_id)
        return tokens, pad_mask, int(sequences.lengths[indices].sum())


def random_sequences(rng: np.random.Generator, n: int, options: SyntheticOptions) -> list[np.ndarray]:
    """``n`` sequences of regular ids (no specials), of lengths uniform in [min_len, max_len]."""
    lengths = rng.integers(options.min_len, options.max_len + 1, size=n)
    return [rng.integers(N_SPECIAL, options.vocab_size, size=k) for k in lengths]


def token_targets(targets: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
    """Token targets with IGNORE at padding."""
    return targets.masked_fill(pad_mask, IGNORE)
