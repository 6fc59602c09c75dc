"""Language modelling on a token stream, as the Transformer-XL scripts train it; scored by perplexity.

Stored example: a :class:`TokenStream`, a split's ids as one stream (every sentence ends in
``<eos>``, which is predicted like any token), cut the way the scripts' ``LMOrderedIterator`` cuts
it: ``rows`` equal rows (the stream trimmed to a multiple of ``rows``), read in consecutive segments
of ``seg_len`` tokens; only full segments, so every row of every batch has the same length and
nothing is padded.  Example ``e = s·rows + b`` is segment ``s`` of row ``b``: its ``seg_len``
inputs and the ``seg_len`` targets one position later.  The batch of segment ``s`` holds its
``rows`` examples, in row order.

The geometry comes from the run config (:meth:`LMStream.for_run`): training takes ``train.batch_size``
rows of ``model.xl.tgt_len``; valid and test ``model.xl.eval_batch_size`` rows (the scripts' 10) of
``eval_tgt_len``.  An epoch visits the segments in order (no shuffling: the memory runs along the
rows), and the model (:class:`~normlab.models.transformer_xl.StreamingTransformerXL`) carries its
memory from one training step to the next, empty again at the first segment of each epoch, as the
scripts reset it; it is part of the model's ``state_dict``, so a resumed run goes on with exactly
the memory it had.  The evaluation (:meth:`LMStream.evaluate`) runs the split's segments in order
with the memory carried across, the memory ``mem_len + tgt_len - eval_tgt_len`` long, as the
scripts' ``evaluate``: ``loss`` is the NLL per predicted token, ``ppl`` its exponential.

:meth:`LMStream.forward` (what the TID probe calls) runs a batch without memory; its examples may be
any segments (the probe's random-segment floor draws them at random).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from normlab.models.transformer_xl import StreamingTransformerXL, XLConfig

from ..examples import EOS, N_SPECIAL, Batch, TaskData
from .base import Family, SyntheticOptions, random_sequences


@dataclass(frozen=True)
class TokenStream:
    """A split as one id stream; ``rows``/``seg_len`` (None until :meth:`LMStream.for_run`) cut it."""

    ids: np.ndarray  # flat ids (may be memory-mapped), <eos> after every sentence
    rows: int | None = None
    seg_len: int | None = None

    def __len__(self) -> int:
        return self.n_segments * self.rows if self.rows else 0

    @property
    def row_len(self) -> int:
        return len(self.ids) // self.rows

    @property
    def n_segments(self) -> int:
        """Full segments per row: the scripts' ``range(0, n_step - bptt, bptt)``."""
        return (self.row_len - 1) // self.seg_len

    def cut(self, rows: int, seg_len: int, split: str) -> TokenStream:
        out = replace(self, rows=rows, seg_len=seg_len)
        if out.n_segments < 1:
            raise ValueError(f"the {split} stream of {len(self.ids)} tokens is too short for {rows} rows "
                             f"of {seg_len} + 1 tokens; use fewer rows (train.batch_size, model.xl.eval_batch_size) "
                             "or shorter segments (model.xl.tgt_len, eval_tgt_len)")
        return out

    def require_cut(self) -> None:
        if self.rows is None:
            raise ValueError("this token stream has no segment geometry yet; a run gets it from "
                             "LMStream.for_run(task, run_config) (the engine and load_run call it)")

    def windows(self, examples: np.ndarray) -> np.ndarray:
        """(len(examples), seg_len + 1) ids: each example's inputs and, one later, its targets."""
        self.require_cut()
        examples = np.asarray(examples, dtype=np.int64)
        segment, row = np.divmod(examples, self.rows)
        start = row * self.row_len + segment * self.seg_len
        return np.asarray(self.ids[start[:, None] + np.arange(self.seg_len + 1)], dtype=np.int64)


class LMStream(Family):
    name = "lm_stream"
    model_class = StreamingTransformerXL
    score = "ppl"
    data_families = ("lm_stream", "lm")  # the stream of any prepared LM corpus (Brown's too)
    model_keys = ("xl",)

    # --- data ---------------------------------------------------------------------------------------

    def select(self, split, index: np.ndarray, max_len: int | None) -> TokenStream:
        """The stream of sentences ``index`` (each with its <eos>), in order; a view when they are the
        first k (``data.options.max_examples``).  ``max_len`` is never given: it is not one of this
        family's data options (a stream has no sentences to cut)."""
        offsets, ids = np.asarray(split.tokens.offsets), split.tokens.ids
        index = np.asarray(index, dtype=np.int64)
        if np.array_equal(index, np.arange(len(index))):
            return TokenStream(ids[: offsets[len(index)]])
        return TokenStream(np.concatenate([ids[offsets[i] : offsets[i + 1]] for i in index]))

    def task_data(self, train, splits: dict[str, object], info: dict) -> TaskData:
        # a trailing <pad> (the scripts' vocabulary, normlab.data's lm_stream data) never occurs in a
        # stream: the model's vocabulary stops before it
        vocab = train.vocab_size - int(train.pad_id == train.vocab_size - 1)
        return TaskData(self.name, splits, vocab_size=vocab, pad_id=train.pad_id, eos_id=train.eos_id,
                        bos_id=train.eos_id, info=info)

    def synthetic(self, rng: np.random.Generator, sizes: dict[str, int], options: SyntheticOptions) -> TaskData:
        """Arithmetic progressions mod the vocabulary (step 1 or 2), each followed by EOS, as one stream."""
        n_regular = options.vocab_size - N_SPECIAL
        splits = {}
        for split, n in sizes.items():
            seqs = random_sequences(rng, n, options)
            steps = rng.integers(1, 3, size=n)
            sentences = [np.append((s[0] - N_SPECIAL + step * np.arange(len(s))) % n_regular + N_SPECIAL, EOS)
                         for s, step in zip(seqs, steps, strict=True)]
            splits[split] = TokenStream(np.concatenate(sentences).astype(np.int64))
        return TaskData(self.name, splits, vocab_size=options.vocab_size, bos_id=EOS)

    # --- the run ------------------------------------------------------------------------------------

    def check_config(self, cfg: dict) -> None:
        XLConfig.from_dict(cfg["model"].get("xl", {}))
        if cfg["optim"]["label_smoothing"]:
            raise ValueError("optim.label_smoothing must be 0 for task lm_stream (the adaptive softmax's NLL has "
                             "no smoothing; the Transformer-XL scripts use none)")

    def for_run(self, task: TaskData, cfg: dict) -> TaskData:
        """Each split cut as the run reads it: ``train.batch_size`` rows of ``xl.tgt_len`` for training,
        ``xl.eval_batch_size`` rows of ``xl.eval_tgt_len`` for valid and test."""
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError("task lm_stream trains on one process: its memory runs along every row of the batch "
                             "(start it without torchrun)")
        xl = XLConfig.from_dict(cfg["model"].get("xl", {}))
        eval_len, _ = xl.evaluation_lengths()
        geometry = {"train": (cfg["train"]["batch_size"], xl.tgt_len)}
        cut = {s: stream.cut(*geometry.get(s, (xl.eval_batch_size, eval_len)), s) for s, stream in task.splits.items()}
        return replace(task, splits=cut)

    def epoch_order(self, n_batches: int, seed: int, epoch: int) -> np.ndarray:
        return np.arange(n_batches)  # the segments in order: the memory runs along the rows

    # --- batches ------------------------------------------------------------------------------------

    def index_batches(self, examples: TokenStream, split, max_tokens, batch_size, seed, max_sentences):
        """One batch per segment: its ``rows`` examples (``train.max_tokens`` does not apply)."""
        examples.require_cut()
        rows = examples.rows
        return [np.arange(s * rows, (s + 1) * rows) for s in range(examples.n_segments)]

    def collate(self, task: TaskData, split: str, indices: np.ndarray) -> Batch:
        window = torch.from_numpy(task.splits[split].windows(indices))
        n = window.shape[0] * (window.shape[1] - 1)
        return Batch(dict(tokens=window[:, :-1], target=window[:, 1:]), n, n, np.asarray(indices))

    # --- the model ----------------------------------------------------------------------------------

    def model_sizes(self, task: TaskData) -> dict:
        return dict(vocab_size=task.vocab_size)

    def forward(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Log-probabilities (B, T, vocab) of a batch run without memory (the TID probe's forward)."""
        return model(batch.tensors["tokens"])[0]

    def targets(self, batch: Batch) -> torch.Tensor:
        return batch.tensors["target"]

    def loss(self, model: nn.Module, batch: Batch, label_smoothing: float) -> torch.Tensor:
        """Mean NLL per target token, the model's memory carried from the previous segment."""
        xl = getattr(model, "module", model)
        t = batch.tensors
        nll, memory = model(t["tokens"], t["target"], xl.carried_memory(batch.indices))
        xl.carry(memory, batch.indices)
        return nll.float().mean()

    # --- evaluation ---------------------------------------------------------------------------------

    def evaluate(self, model, task, split, index_batches, device, eval_cfg, decode, autocast) -> dict:
        """The scripts' evaluation: the split's segments in order, the memory carried across."""
        _, mem_len = model.xl.evaluation_lengths()
        nll = torch.zeros((), dtype=torch.float64, device=device)
        count, memory, previous = 0, None, None
        for indices in index_batches:
            if previous is not None and indices[0] != previous[0] + len(previous):
                raise ValueError(f"{split}: stream batches must follow each other in order")
            batch = self.collate(task, split, indices).to(device)
            with autocast:
                out, memory = model(batch.tensors["tokens"], batch.tensors["target"], memory, mem_len=mem_len)
            nll += out.double().sum()
            count += batch.n_targets
            previous = indices
        total = nll.item()
        return {"loss": total / max(count, 1), "n_targets": count, **self.scores({"nll": total, "count": count})}
