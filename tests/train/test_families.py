"""Task families as classes: a new family is one class in one file; examples stay the data layer's arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from normlab import data
from normlab.data.store import write_prepared
from normlab.models import ModelOptions
from normlab.train import load_run, synthetic_task, train
from normlab.train.batching import collate, split_batches
from normlab.train.examples import N_SPECIAL, Batch, Examples, Sequences, TaskData
from normlab.train.families import FAMILIES, Family, get_family
from normlab.train.tasks import from_normlab_data

from .conftest import run_config

# --- a toy family, defined here alone ------------------------------------------------------------


class FirstTokenModel(nn.Module):
    """The studied-norm encoder read at the first position: is the first id in the upper half?"""

    def __init__(self, opts: ModelOptions, vocab_size: int, pad_id: int):
        super().__init__()
        self.embed = opts.token_embedding(vocab_size, pad_id)
        self.encoder = opts.studied_stack()
        self.head = nn.Linear(opts.d_model, 2)

    def forward(self, tokens, pad_mask):
        return self.head(self.encoder(self.embed(tokens), pad_mask)[:, 0])


class UpperFirst(Family):
    name = "upper_first"
    model_class = FirstTokenModel

    def synthetic(self, rng, sizes, options):
        splits = {}
        for split, n in sizes.items():
            seqs = [rng.integers(N_SPECIAL, options.vocab_size, size=k)
                    for k in rng.integers(options.min_len, options.max_len + 1, size=n)]
            labels = np.array([int(s[0] >= (N_SPECIAL + options.vocab_size) // 2) for s in seqs])
            splits[split] = Examples(tokens=Sequences.from_list(seqs), labels=labels)
        return TaskData(self.name, splits, vocab_size=options.vocab_size)

    def lengths(self, examples):
        return examples.fields["tokens"].lengths

    def collate(self, task, split, indices):
        examples = task.splits[split]
        tokens, pad_mask = examples.fields["tokens"].padded(indices, task.pad_id)
        labels = torch.from_numpy(examples.fields["labels"][indices])
        return Batch(dict(tokens=tokens, pad_mask=pad_mask, labels=labels), len(indices),
                     int((~pad_mask).sum()), np.asarray(indices))

    def model_sizes(self, task):
        return dict(vocab_size=task.vocab_size, pad_id=task.pad_id)

    def targets(self, batch):
        return batch.tensors["labels"]


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(FAMILIES, UpperFirst.name, UpperFirst)
    return UpperFirst.name


def test_a_family_defined_in_one_file_trains_through_the_engine(toy, tmp_path):
    cfg = run_config(toy, model={"norm": "bn", "placement": "pre"}, train={"max_steps": 40})
    final = train(cfg, tmp_path / "run")
    assert final["status"] == "completed" and final["task"] == toy and final["primary_metric"] == "accuracy"
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < 0.8 * losses[0], losses
    assert set(final["test"]) == {"population", "batch_stats"}  # batch statistics: evaluated twice
    assert final["test"]["population"]["accuracy"] > 0.75
    run = load_run(tmp_path / "run")
    assert run.family.name == toy and run.forward(next(run.first_epoch())).shape[-1] == 2


def test_unknown_families_name_the_registered_ones(toy):
    with pytest.raises(ValueError, match="unknown task family 'speech'; valid: translation, lm, .*upper_first"):
        get_family("speech")


def _padded(rows, pad, width):
    return [list(r) + [pad] * (width - len(r)) for r in rows]


def _naive_batch(task, indices) -> dict:
    """The batch tensors of a family, built example by example from what the family stores."""
    examples = [task.splits["train"][i] for i in indices]
    pad, bos, eos = task.pad_id, task.bos_id, task.eos_id
    if task.family == "translation":
        src = [e[0].tolist() for e in examples]
        prev = [[bos, *e[1].tolist()] for e in examples]
        target = [[*e[1].tolist(), eos] for e in examples]
        w_src, w_tgt = max(map(len, src)), max(map(len, prev))
        return dict(src=_padded(src, pad, w_src), prev=_padded(prev, pad, w_tgt), target=_padded(target, pad, w_tgt))
    if task.family == "lm":
        tokens = [[bos, *e.tolist()] for e in examples]
        target = [[*e.tolist(), eos] for e in examples]
        width = max(map(len, tokens))
        return dict(tokens=_padded(tokens, pad, width), target=_padded(target, pad, width))
    width = max(len(e[0]) for e in examples)
    out = dict(tokens=_padded([e[0].tolist() for e in examples], pad, width))
    if task.family == "tagging":
        out["tags"] = _padded([e[1].tolist() for e in examples], pad, width)
    else:
        out["labels"] = [int(e[1]) for e in examples]
    return out


# lm_stream's examples are segments of one stream, checked the same way in test_lm_stream.py
@pytest.mark.parametrize("family", [name for name in FAMILIES if name not in ("image", "lm_stream")])
def test_text_batches_equal_the_examples_padded_one_by_one(family):
    """Collate (one gather over flat arrays) against a loop over the examples as the family stores them."""
    task = synthetic_task(family, seed=3, n_train=40, n_valid=8, n_test=8)
    batches = split_batches(task, "train", 64, 8, seed=0)
    assert sorted(np.concatenate(batches).tolist()) == list(range(40))
    for indices in batches:
        batch = collate(task, "train", indices)
        for key, expected in _naive_batch(task, indices).items():
            assert batch.tensors[key].tolist() == expected, key


# --- examples of a prepared dataset stay its memory-mapped arrays ---------------------------------


@pytest.fixture
def prepared(tmp_path):
    """A small prepared LM and tagging dataset under registered names (nothing downloaded)."""
    rng = np.random.default_rng(0)

    def flat(seqs):
        return np.concatenate(seqs).astype(np.int32), np.concatenate([[0], np.cumsum([len(s) for s in seqs])])

    for name, family in (("brown_lm", "lm"), ("wnut16", "tagging")):
        arrays = {}
        for split, n in (("train", 60), ("valid", 20), ("test", 20)):
            seqs = [rng.integers(3, 30, size=k) for k in rng.integers(2, 12, size=n)]
            if family == "lm":
                seqs = [np.append(s, 2) for s in seqs]  # each sentence ends in <eos>
            ids, offsets = flat(seqs)
            arrays[split] = {"tokens": ids, "offsets": offsets.astype(np.int64)}
            if family == "tagging":
                arrays[split]["tags"] = (ids % 3).astype(np.int16)
        meta = {"family": family, "splits": ["train", "valid", "test"], "vocab_size": 30, "pad_id": 0,
                "unk_id": 1, "eos_id": 2 if family == "lm" else None, "label_names": ["O", "B-X", "I-X"]}
        write_prepared(tmp_path / "prepared" / name, meta, {}, arrays, None)
    return tmp_path


def test_prepared_examples_are_views_of_the_memory_mapped_ids(prepared):
    options = {"cache": str(prepared), "max_examples": 30, "max_eval_examples": 7, "max_len": 5}
    task = from_normlab_data("lm", "brown_lm", options)
    stored = task.splits["train"]
    assert isinstance(stored.ids, np.memmap) and str(stored.ids.filename).endswith("brown_lm/train/tokens.npy")
    assert task.info["examples"] == {"train": 30, "valid": 7, "test": 7}
    for split in ("train", "valid", "test"):
        source = data.load("brown_lm", split, prepared).tokens
        assert [task.splits[split][i].tolist() for i in range(len(task.splits[split]))] == [
            source[i][:-1][:5].tolist() for i in range(len(task.splits[split]))]  # <eos> dropped, then cut

    tagged = from_normlab_data("tagging", "wnut16", {"cache": str(prepared), "length_range": [4, 6]})
    source = data.load("wnut16", "train", prepared)
    keep = [i for i in range(len(source.tokens)) if 4 <= len(source.tokens[i]) <= 6]
    assert len(tagged.splits["train"]) == len(keep) and tagged.tag_scheme == "iob2"
    for j, i in enumerate(keep):
        ids, tags = tagged.splits["train"][j]
        assert ids.tolist() == source.tokens[i].tolist() and tags.tolist() == source.tags[i].tolist()
    batch = collate(tagged, "train", np.array([2, 0]))
    first = source.tags[keep[0]].tolist()
    assert batch.tensors["tags"][1].tolist() == first + [0] * (batch.tensors["tags"].shape[1] - len(first))
