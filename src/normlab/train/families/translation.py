"""Translation: an encoder–decoder learns the target sentence from the source; BLEU by beam search.

Stored examples: :class:`TranslationExamples` (``source``, ``target`` id sequences without BOS/EOS —
the batch adds them — and, for data prepared with Moses, ``reference``: the untokenised target as
UTF-8 bytes), which also say whether every source sentence ends in EOS (fairseq's binarised data
does: ``source_eos``) and how ids become the text BLEU scores (:class:`BleuText`).

Decoding reports two BLEU flavours (``normlab.metrics``): ``bleu``, sacreBLEU on detokenised text
(with ``bleu_signature``), and ``bleu_tok``, tokenised BLEU as fairseq-generate ``--remove-bpe``
reports it (with ``bleu_tok_signature``) — the one the papers' numbers are comparable with.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from normlab import metrics
from normlab.models import TranslationTransformer

from ..examples import N_SPECIAL, Batch, Examples, Sequences, TaskData
from .base import SyntheticOptions, TextFamily, token_targets


@dataclass(frozen=True)
class BleuText:
    """How target ids become the strings the two BLEU flavours score.

    ``detokenized(ids)``: plain text (sacreBLEU's input).  ``tokenized(ids, reference)``: the text
    tokenised BLEU counts words in (Moses data: BPE removed, an unknown reference token written
    ``<<unk>>`` as fairseq-generate does; None: sacreBLEU's 13a tokenisation of the plain text).
    ``lowercase``: the data is lowercased (sacreBLEU then lowercases too: ``case:lc``);
    ``compound_split``: tokenised BLEU after fairseq's compound splitting (WMT En-De).
    """

    detokenized: Callable[[list[int]], str]
    tokenized: Callable[[list[int], bool], str] | None = None
    lowercase: bool = False
    compound_split: bool = False

    def tokenized_text(self, ids: list[int], reference: bool) -> str:
        if self.tokenized is not None:
            return self.tokenized(ids, reference)
        return _tokenizer_13a()(self.detokenized(ids))

    @property
    def tokenized_signature(self) -> str:
        """What ``bleu_tok`` was computed on, in sacreBLEU's signature style."""
        tok = "moses+bpe-removed" if self.tokenized is not None else "13a"
        return "|".join([
            "nrefs:1", f"case:{'lc' if self.lowercase else 'mixed'}", f"tok:{tok}",
            f"compound:{'yes' if self.compound_split else 'no'}", "smooth:none", "scorer:fairseq-bleu4",
        ])

    @classmethod
    def of_split(cls, split) -> BleuText:
        """The BleuText of a prepared ``normlab.data`` translation split."""
        text = split.target_text()
        if text is None:
            return cls(split.decode)
        options = split.meta.get("text", {})
        return cls(text.detokenized, lambda ids, reference: text.tokenized(ids, escape_unk=reference),
                   lowercase=bool(options.get("lowercase")), compound_split=bool(options.get("compound_split")))


class TranslationExamples(Examples):
    """The examples of a translation split (fields ``source``, ``target`` and optionally ``reference``),
    whether their sources end in EOS, and how their ids become text (None: ``TaskData.detokenize``)."""

    def __init__(self, *, source_eos: bool = False, text: BleuText | None = None, **fields):
        super().__init__(**fields)
        self.source_eos, self.text = bool(source_eos), text


class Translation(TextFamily):
    name = "translation"
    data_options = (*TextFamily.data_options, "source_eos")
    model_class = TranslationTransformer
    score = "ppl"
    decodes = True

    def select(self, split, index: np.ndarray, max_len: int | None) -> TranslationExamples:
        fields = dict(source=Sequences.select(split.tokens, index), target=Sequences.select(split.target, index))
        if split.references is not None:
            fields["reference"] = Sequences.select(split.references, index)
        return TranslationExamples(source_eos=bool(split.meta.get("source_eos", False)), **fields)

    def task_data(self, train, splits: dict[str, object], info: dict) -> TaskData:
        """``data.options.source_eos`` (true/false) overrides the dataset's own (its meta.json says
        ``source_eos``: true for the papers' datasets, as fairseq binarises them)."""
        source_eos = info.get("options", {}).get("source_eos")
        if source_eos is not None and not isinstance(source_eos, bool):
            raise ValueError(f"data.options.source_eos: {source_eos!r} is not valid; valid values: true, false")
        text = BleuText.of_split(train)
        for examples in splits.values():
            if source_eos is not None:
                examples.source_eos = source_eos
            examples.text = text
        task = super().task_data(train, splits, info)
        task.detokenize = text.detokenized
        task.info["source_eos"] = splits["train"].source_eos
        return task

    def synthetic_examples(self, rng, seqs: list[np.ndarray], options: SyntheticOptions) -> TranslationExamples:
        """The target is the source reversed with every id shifted by one (a joined vocabulary)."""
        n_regular = options.vocab_size - N_SPECIAL
        targets = [(s[::-1] - N_SPECIAL + 1) % n_regular + N_SPECIAL for s in seqs]
        return TranslationExamples(source=Sequences.from_list(seqs), target=Sequences.from_list(targets))

    def synthetic_task_data(self, splits: dict[str, object], options: SyntheticOptions) -> TaskData:
        return TaskData(self.name, splits, vocab_size=options.vocab_size, detokenize=_synthetic_detokenize)

    def lengths(self, examples: Examples) -> np.ndarray:
        source, target = examples.fields["source"], examples.fields["target"]
        # the source may end in EOS; the target gets BOS (input) / EOS (output)
        return np.maximum(source.lengths + _source_eos(examples), target.lengths + 1)

    def longest_prepared(self, longest: dict[str, int], max_len: int | None) -> int:
        return max(longest["tokens"], longest["target"] + 1)  # as lengths; max_len does not apply

    def collate(self, task: TaskData, split: str, indices: np.ndarray) -> Batch:
        examples = task.splits[split]
        source, target = examples.fields["source"], examples.fields["target"]
        pad, source_eos = task.pad_id, _source_eos(examples)
        src, src_pad = source.padded(indices, pad, suffix=task.eos_id if source_eos else None)
        prev, prev_pad = target.padded(indices, pad, prefix=task.bos_id)
        out, _ = target.padded(indices, pad, suffix=task.eos_id)
        n_targets = int(target.lengths[indices].sum()) + len(indices)
        n_tokens = int(source.lengths[indices].sum()) + source_eos * len(indices) + n_targets
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

    def primary_metric(self, task: TaskData) -> str:
        """Tokenised BLEU where the data was prepared as the papers' scripts prepare it (Moses, BPE: the
        published numbers are fairseq-generate's tokenised BLEU), else sacreBLEU (``bleu_tok`` of
        other data is only sacreBLEU's 13a tokenisation without smoothing)."""
        text = task.splits["train"].text
        return "bleu_tok" if text is not None and text.tokenized is not None else "bleu"


class BeamSearchBleu:
    """Beam search on every batch, then corpus BLEU of the best hypotheses, both flavours: sacreBLEU
    of the detokenised text against the untokenised references (``bleu``, ``bleu_signature``) and
    tokenised BLEU as fairseq-generate computes it (``bleu_tok``, ``bleu_tok_signature``)."""

    def __init__(self, task: TaskData, split: str, eval_cfg: dict):
        self.eval_cfg = eval_cfg
        examples = task.splits[split]
        self.text = getattr(examples, "text", None) or BleuText(task.detokenize)
        self.target = examples.fields["target"]
        self.raw = examples.fields.get("reference")
        self.hypotheses: list[str] = []
        self.references: list[str] = []
        self.tokenized_hypotheses: list[str] = []
        self.tokenized_references: list[str] = []

    def add(self, model, batch: Batch, logits, targets, autocast: AbstractContextManager) -> None:
        t, cfg = batch.tensors, self.eval_cfg
        with autocast:
            hyps = model.beam_search(t["src"], t["src_pad"], beam=cfg["beam"], lenpen=cfg["lenpen"],
                                     max_len_a=cfg["max_len_a"], max_len_b=cfg["max_len_b"],
                                     min_len=cfg.get("min_len", 1))
        text = self.text
        for hyp, i in zip(hyps, batch.indices, strict=True):
            ref = self.target[i].tolist()
            self.hypotheses.append(text.detokenized(hyp))
            self.references.append(bytes(self.raw[i]).decode("utf-8") if self.raw is not None
                                   else text.detokenized(ref))
            self.tokenized_hypotheses.append(text.tokenized_text(hyp, False))
            self.tokenized_references.append(text.tokenized_text(ref, True))

    def result(self) -> dict:
        if not self.hypotheses:
            return {}
        text = self.text
        out = metrics.bleu(self.hypotheses, self.references, self.eval_cfg.get("bleu_tokenize", "13a"),
                           lowercase=text.lowercase)
        hyps, refs = self.tokenized_hypotheses, self.tokenized_references
        if text.compound_split:
            hyps, refs = [metrics.compound_split(h) for h in hyps], [metrics.compound_split(r) for r in refs]
        out["bleu_tok"] = metrics.tokenized_bleu(hyps, refs)
        out["bleu_tok_signature"] = text.tokenized_signature
        return out


def _source_eos(examples) -> int:
    return int(getattr(examples, "source_eos", False))


@lru_cache(maxsize=1)
def _tokenizer_13a():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()


def _synthetic_detokenize(ids: list[int]) -> str:
    return " ".join(f"w{i}" for i in ids)
