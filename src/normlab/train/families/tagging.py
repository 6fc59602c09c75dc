"""Sequence tagging: one label per token (NER, POS); entity F1 (seqeval) for IOB2 tags, else accuracy.

Stored example: ``TaggedExamples(tokens=Sequences, tags=Sequences)`` (same lengths), with the
characters of every token where the data has them (:class:`TokenChars`).

Two models, chosen by ``model.crf``:

* ``SequenceTagger`` (the default): a label per token, trained with cross-entropy per token,
  predicted by argmax.
* ``CRFTagger`` (``model.crf: true``, options in ``model.crf_options``, TENER's model): trained with
  the CRF's sentence NLL averaged over the sentences of the batch (so a batch's ``n_targets``, which
  RBN's penalty is divided by, is its number of sentences), predicted by Viterbi decoding under the
  tag scheme's transition constraints, in the evaluation as everywhere.  What the run adds to the
  data (:meth:`Tagging.for_run`): the tags converted to the scheme the CRF learns
  (``crf_options.tag_scheme``: ``bioes`` as TENER, from the data's IOB2; the entities, and so the
  scores, are the same) and, with ``crf_options.char_cnn``, character ids: a character vocabulary of
  the training split's characters seen at least ``char_min_freq`` times (0 padding, 1 unknown), the
  ids of every token's characters found in one vectorised lookup, a batch's (B, T, W) tensor in one
  gather.  The evaluation's ``loss`` is then the CRF's NLL per sentence and ``accuracy`` the token
  accuracy of the Viterbi path.

Entity F1 is seqeval's strict mode in the scheme of the tags (IOB2, or IOBES for BIOES).
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from normlab import metrics
from normlab.models import SequenceTagger
from normlab.models.crf import convert_iob2
from normlab.models.crf_tagger import CHAR_UNK, CRFOptions, CRFTagger

from ..examples import BOS, N_SPECIAL, Batch, Examples, Sequences, TaskData
from .base import SyntheticOptions, TextFamily, token_targets

IOB2_NAME = re.compile(r"^(O|[BI]-.+)$")
SYNTHETIC_TAGS = ["O", "B-ENT", "I-ENT"]
ENTITY_SCHEMES = ("iob2", "bioes")  # tag schemes with entities (scored by entity F1)


@dataclass(frozen=True)
class TokenChars:
    """The characters of every token of a split's flat token array: token ``p`` has
    ``codes[offsets[p] : offsets[p + 1]]`` (Unicode code points as stored, character ids for a run)."""

    codes: np.ndarray
    offsets: np.ndarray  # int64 (tokens + 1,)


class TaggedExamples(Examples):
    """``Examples(tokens, tags)`` plus the characters of their tokens (``chars``, None where the data
    has none) and, in a run with a character CNN, their ids (``char_ids``)."""

    def __init__(self, chars: TokenChars | None = None, char_ids: TokenChars | None = None, **fields):
        super().__init__(**fields)
        self.chars, self.char_ids = chars, char_ids

    def with_fields(self, **changes) -> TaggedExamples:
        keep = {"chars": self.chars, "char_ids": self.char_ids}
        return TaggedExamples(**{**keep, **self.fields, **changes})


class Tagging(TextFamily):
    name = "tagging"
    model_class = SequenceTagger
    data_options = (*TextFamily.data_options, "max_len")
    model_keys = ("crf", "crf_options")

    def select(self, split, index: np.ndarray, max_len: int | None) -> TaggedExamples:
        chars = None if split.chars is None else TokenChars(split.chars.ids, split.chars.offsets)
        return TaggedExamples(tokens=Sequences.select(split.tokens, index, max_len=max_len),
                              tags=Sequences.select(split.tags, index, max_len=max_len), chars=chars)

    def task_data(self, train, splits: dict[str, object], info: dict) -> TaskData:
        task = super().task_data(train, splits, {**info, "unk_id": train.unk_id})
        task.label_names = list(train.label_names)
        task.tag_scheme = "iob2" if all(IOB2_NAME.match(t) for t in train.label_names) else "tags"
        return task

    def synthetic_examples(self, rng, seqs: list[np.ndarray], options: SyntheticOptions) -> TaggedExamples:
        """IOB2 entities are runs of ids from the upper half of the vocabulary; a token's characters
        are its id's decimal digits."""
        upper = N_SPECIAL + (options.vocab_size - N_SPECIAL) // 2
        tokens = Sequences.from_list(seqs)
        words = [str(i) for i in tokens.ids.tolist()]
        offsets = np.concatenate([[0], np.cumsum([len(w) for w in words])]).astype(np.int64)
        codes = np.array([ord(c) for w in words for c in w], dtype=np.int32)
        return TaggedExamples(tokens=tokens, tags=Sequences.from_list([iob2_tags(s >= upper) for s in seqs]),
                              chars=TokenChars(codes, offsets))

    def synthetic_task_data(self, splits: dict[str, object], options: SyntheticOptions) -> TaskData:
        # BOS, a reserved id no synthetic token has, stands for <unk> (word dropout)
        return TaskData(self.name, splits, vocab_size=options.vocab_size, label_names=list(SYNTHETIC_TAGS),
                        tag_scheme="iob2", info={"unk_id": BOS})

    # --- the run: a CRF's tags and characters ------------------------------------------------------

    def check_config(self, cfg: dict) -> None:
        model = cfg["model"]
        if "crf_options" in model and not model.get("crf"):
            raise ValueError("model.crf_options apply to a CRF tagger: set model.crf: true, or remove them")
        if model.get("crf"):
            CRFOptions.from_dict(model.get("crf_options", {}))
            if cfg["optim"]["label_smoothing"]:
                raise ValueError("optim.label_smoothing must be 0 with model.crf (the CRF's NLL has no smoothing)")

    def for_run(self, task: TaskData, cfg: dict) -> TaskData:
        """With ``model.crf``: the tags in ``crf_options.tag_scheme`` and, with ``char_cnn``, character ids."""
        if not cfg["model"].get("crf"):
            return task
        opts = CRFOptions.from_dict(cfg["model"].get("crf_options", {}))
        splits, names, scheme = dict(task.splits), task.label_names, task.tag_scheme
        if opts.tag_scheme != "iob2":
            if task.tag_scheme != "iob2":
                raise ValueError(f"model.crf_options.tag_scheme {opts.tag_scheme!r} converts IOB2 tags; this "
                                 f"dataset's tags are not IOB2 ({', '.join(task.label_names[:5])}, ...)")
            names, table = convert_iob2(task.label_names, opts.tag_scheme)
            splits = {s: ex.with_fields(tags=converted_tags(ex.fields["tags"], table.numpy()))
                      for s, ex in splits.items()}
            scheme = opts.tag_scheme
        n_chars = 0
        if opts.char_cnn:
            missing = [s for s, ex in splits.items() if ex.chars is None]
            if missing:
                dataset = task.info.get("dataset", "this dataset")
                raise ValueError(f"model.crf_options.char_cnn needs the characters of every token, and {dataset} "
                                 f"was prepared without them; run `normlab prepare {dataset} --force`")
            kept = char_vocabulary(splits["train"], opts.char_min_freq)
            n_chars = len(kept) + 2
            splits = {s: ex.with_fields(char_ids=TokenChars(char_ids_of(ex.chars.codes, kept), ex.chars.offsets))
                      for s, ex in splits.items()}
        crf = {"n_chars": n_chars, "max_word_len": opts.max_word_len}
        return replace(task, splits=splits, label_names=names, tag_scheme=scheme, info={**task.info, "crf": crf})

    # --- batches and the model ---------------------------------------------------------------------

    def collate(self, task: TaskData, split: str, indices: np.ndarray) -> Batch:
        examples = task.splits[split]
        tokens, pad_mask, n = self.padded_tokens(examples, indices, task.pad_id)
        tags, _ = examples.fields["tags"].padded(indices, task.pad_id)
        tensors = dict(tokens=tokens, pad_mask=pad_mask, tags=tags)
        crf = task.info.get("crf")
        if getattr(examples, "char_ids", None) is not None:
            tensors["chars"] = char_batch(examples.fields["tokens"], examples.char_ids, indices, crf["max_word_len"])
        n_targets = len(indices) if crf is not None else n  # a CRF's loss is a mean over sentences
        return Batch(tensors, n_targets, n, np.asarray(indices))

    def model_sizes(self, task: TaskData) -> dict:
        return dict(vocab_size=task.vocab_size, pad_id=task.pad_id, n_labels=len(task.label_names))

    def build_model(self, options, task: TaskData) -> nn.Module:
        if not options.crf:
            return super().build_model(options, task)
        crf = task.info.get("crf")
        if crf is None:
            raise ValueError("a CRF tagger is built for a task from Tagging.for_run(task, run_config) "
                             "(the engine and load_run call it)")
        opts = CRFOptions.from_dict(options.crf_options)
        constrained = task.tag_scheme in ENTITY_SCHEMES
        return CRFTagger(
            options, **self.model_sizes(task),
            label_names=task.label_names if constrained else None, tag_scheme=task.tag_scheme if constrained else None,
            n_chars=crf["n_chars"], char_options=opts.char_options(), fc_dropout=opts.fc_dropout,
            word_dropout=opts.word_dropout, unk_id=task.info.get("unk_id"),
        )

    def forward(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Label scores (B, T, labels): logits, or a CRF tagger's emission log-probabilities."""
        t = batch.tensors
        return model(t["tokens"], t["pad_mask"], *([t["chars"]] if "chars" in t else []))

    def targets(self, batch: Batch) -> torch.Tensor:
        return token_targets(batch.tensors["tags"], batch.tensors["pad_mask"])

    def loss(self, model: nn.Module, batch: Batch, label_smoothing: float) -> torch.Tensor:
        """Cross-entropy per token; a CRF tagger's sentence NLL, averaged over the sentences (TENER)."""
        crf = crf_of(model)
        if crf is None:
            return super().loss(model, batch, label_smoothing)
        t = batch.tensors
        return crf.nll(self.forward(model, batch), t["tags"], t["pad_mask"]).mean()

    def predict(self, model: nn.Module, batch: Batch, logits: torch.Tensor) -> torch.Tensor:
        """The predicted tags (B, T): Viterbi for a CRF tagger, else argmax."""
        crf = crf_of(model)
        return logits.argmax(-1) if crf is None else crf.decode(logits, batch.tensors["pad_mask"])[0]

    # --- evaluation ---------------------------------------------------------------------------------

    def evaluation_sums(self, model, batch, logits, targets):
        crf = crf_of(model)
        if crf is None:
            return super().evaluation_sums(model, batch, logits, targets)
        pad, tags = batch.tensors["pad_mask"], batch.tensors["tags"]
        keep = ~pad
        correct = ((self.predict(model, batch, logits) == tags) & keep).sum()
        return crf.nll(logits, tags, pad).sum(), correct, keep.sum()

    def evaluation_extras(self, task: TaskData, split: str, eval_cfg: dict, decode: bool) -> list:
        if task.tag_scheme not in ENTITY_SCHEMES:
            return []
        return [EntityF1(task.label_names, task.tag_scheme, self.predict)]

    def primary_metric(self, task: TaskData) -> str:
        return "f1" if task.tag_scheme in ENTITY_SCHEMES else "accuracy"


class EntityF1:
    """Entity-level F1 of the predicted tags (seqeval, strict, in the tags' scheme), over a split's sentences."""

    def __init__(self, label_names: list[str], scheme: str, predict):
        self.names, self.scheme, self.predict = label_names, scheme, predict
        self.true: list[list[str]] = []
        self.predicted: list[list[str]] = []

    def add(self, model, batch: Batch, logits: torch.Tensor, targets: torch.Tensor,
            autocast: AbstractContextManager) -> None:
        names = self.names
        lengths = (~batch.tensors["pad_mask"]).sum(1).tolist()
        predicted = self.predict(model, batch, logits).tolist()
        for row_true, row_pred, n in zip(targets.tolist(), predicted, lengths, strict=True):
            self.true.append([names[i] for i in row_true[:n]])
            self.predicted.append([names[i] for i in row_pred[:n]])

    def result(self) -> dict:
        return {"f1": metrics.entity_f1(self.true, self.predicted, self.scheme)} if self.true else {}


def crf_of(model: nn.Module):
    """The CRF layer of a CRF tagger (inside a DDP wrapper too), None for any other model."""
    inner = getattr(model, "module", model)
    return inner.crf if isinstance(inner, CRFTagger) else None


def iob2_tags(entity: np.ndarray) -> np.ndarray:
    """0 = O, 1 = B-ENT (an entity token after a non-entity one), 2 = I-ENT."""
    continues = np.concatenate([[False], entity[:-1]]) & entity
    return np.where(entity, np.where(continues, 2, 1), 0)


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])``, without the loop."""
    starts, lengths = np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
    return np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(int(lengths.sum()))


def converted_tags(tags: Sequences, table: np.ndarray) -> Sequences:
    """Every sequence of ``tags`` converted by ``table[tag, next tag or n at the end]`` (crf.convert_iob2),
    in one lookup over the flat tags."""
    lengths = np.asarray(tags.lengths, dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    current = np.asarray(tags.ids[ranges(tags.starts, lengths)], dtype=np.int64)
    following = np.append(current[1:], 0)
    following[(starts + lengths - 1)[lengths > 0]] = table.shape[1] - 1  # the sentence ends
    return Sequences(table[current, following], starts, lengths)


def char_vocabulary(train: TaggedExamples, min_freq: int) -> np.ndarray:
    """The sorted code points of the training tokens' characters seen at least ``min_freq`` times
    (character id = 2 + position; 0 padding, 1 unknown)."""
    tokens, offsets = train.fields["tokens"], train.chars.offsets
    position = ranges(tokens.starts, tokens.lengths)  # every token of the examples, in the flat array
    first = np.asarray(offsets[position])
    codes = np.asarray(train.chars.codes)[ranges(first, np.asarray(offsets[position + 1]) - first)]
    values, counts = np.unique(codes, return_counts=True)
    return values[counts >= min_freq]


def char_ids_of(codes: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Character ids of code points: 2 + their position in ``kept``, ``CHAR_UNK`` where absent."""
    codes = np.asarray(codes)
    where = np.searchsorted(kept, codes).clip(max=max(len(kept) - 1, 0))
    found = kept[where] == codes if len(kept) else np.zeros(codes.shape, dtype=bool)
    return np.where(found, where + 2, CHAR_UNK).astype(np.int32)


def char_batch(tokens: Sequences, chars: TokenChars, rows: np.ndarray, max_word_len: int | None) -> torch.Tensor:
    """(B, T, W) character ids of the examples ``rows`` (0 at padding), W their longest word (cut at
    ``max_word_len``): one gather."""
    rows = np.asarray(rows, dtype=np.int64)
    starts, lengths = tokens.starts[rows], tokens.lengths[rows]
    width = int(lengths.max()) if len(rows) else 0
    inside = np.arange(width)[None, :] < lengths[:, None]
    position = np.where(inside, starts[:, None] + np.arange(width), 0)
    first = np.asarray(chars.offsets[position])
    n_chars = np.where(inside, np.asarray(chars.offsets[position + 1]) - first, 0)
    w = max(1, int(n_chars.max()) if n_chars.size else 1)
    if max_word_len:
        w = min(w, max_word_len)
        n_chars = np.minimum(n_chars, w)
    keep = np.arange(w) < n_chars[..., None]
    out = np.zeros((len(rows), width, w), dtype=np.int64)
    out[keep] = np.asarray(chars.codes)[(first[..., None] + np.arange(w))[keep]]
    return torch.from_numpy(out)
