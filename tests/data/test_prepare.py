"""prepare -> load through the whole pipeline on a tiny dataset served from a local file URL:
determinism, memory-mapped loading, detokenisation, rebuild on change, the CLI and the cards table."""

from __future__ import annotations

import time

import numpy as np
import pytest
from tiny import ENGLISH, SPANISH

from normlab.cli import main
from normlab.data import card, load, prepare, registry
from normlab.data.cards import datasets_markdown
from normlab.data.sources import Lock
from normlab.data.store import TokenSequences


def test_prepare_load_roundtrip(tmp_path, tiny_bible):
    folder = prepare("tiny_bible", tmp_path / "c1", lock=tiny_bible, quiet=True)
    train = load("tiny_bible", "train", cache=tmp_path / "c1")
    assert isinstance(train.tokens.ids, np.memmap) and train.tokens.ids.dtype == np.int32
    assert len(train) == 30 and len(train.target) == 30
    assert train.decode(train.tokens[0]) == SPANISH[0] and train.decode(train.target[3]) == ENGLISH[3]
    assert (train.pad_id, train.unk_id, train.bos_id, train.eos_id) == (0, 1, 2, 3)
    c = card("tiny_bible", tmp_path / "c1")
    assert c["raw_counts"]["verse_pairs"] == 40 and c["splits"]["valid"]["examples"] == 5
    assert c["sources"][0]["sha256"] == tiny_bible.entries["test:tiny-bible"]["sha256"]
    assert (folder / "tokenizer.json").exists()
    with pytest.raises(KeyError, match="not 'dev'"):
        load("tiny_bible", "dev", cache=tmp_path / "c1")


def test_preparation_is_deterministic(tmp_path, tiny_bible):
    for cache in ("c1", "c2"):
        prepare("tiny_bible", tmp_path / cache, lock=tiny_bible, quiet=True)
    for split in ("train", "valid", "test"):
        for name in ("tokens", "offsets", "target", "target_offsets"):
            a, b = (
                np.load(tmp_path / c / "prepared/tiny_bible" / split / f"{name}.npy") for c in ("c1", "c2")
            )
            assert np.array_equal(a, b)
    assert (tmp_path / "c1/prepared/tiny_bible/tokenizer.json").read_text() == (
        tmp_path / "c2/prepared/tiny_bible/tokenizer.json"
    ).read_text()


def test_up_to_date_preparation_is_reused_and_options_change_rebuilds(tmp_path, tiny_bible, monkeypatch):
    cache = tmp_path / "c"
    prepare("tiny_bible", cache, lock=tiny_bible, quiet=True)
    meta = cache / "prepared/tiny_bible/meta.json"
    stamp = meta.stat().st_mtime_ns
    prepare("tiny_bible", cache, lock=tiny_bible, quiet=True)
    assert meta.stat().st_mtime_ns == stamp
    spec = registry.DATASETS["tiny_bible"]
    monkeypatch.setitem(
        registry.DATASETS,
        "tiny_bible",
        registry.DatasetSpec(**{**spec.__dict__, "options": {"bpe_vocab_size": 100}}),
    )
    prepare("tiny_bible", cache, lock=tiny_bible, quiet=True)
    assert load("tiny_bible", "train", cache=cache).vocab_size <= 100


def test_load_before_prepare_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `normlab prepare rt_polarity`"):
        load("rt_polarity", "train", cache=tmp_path)


def test_token_sequences_index_slice_and_lengths():
    """What the engine reads: `len`, `seqs[i]` (a view of the flat ids, empty sequences included)
    and `lengths`."""
    ids = np.array([5, 6, 7, 8, 9, 10], np.int32)
    seqs = TokenSequences(ids, np.array([0, 3, 3, 6], np.int64))
    assert len(seqs) == 3
    assert [seqs[i].tolist() for i in (2, 0, 1)] == [[8, 9, 10], [5, 6, 7], []]
    assert np.shares_memory(seqs[2], ids) and seqs[2].dtype == np.int32
    assert seqs.lengths.tolist() == [3, 0, 3]


def test_loading_a_large_prepared_split_takes_well_under_a_second(tmp_path):
    from normlab.data.store import write_prepared

    n = 200_000
    offsets = np.arange(n + 1, dtype=np.int64) * 25
    write_prepared(
        tmp_path / "big",
        {"family": "lm", "splits": ["train"], "vocab_size": 10000},
        {},
        {"train": {"tokens": np.ones(offsets[-1], np.int32), "offsets": offsets}},
        None,
    )
    from normlab.data.store import load_split

    t0 = time.perf_counter()
    split = load_split(tmp_path / "big", "big", "train")
    assert len(split) == n and time.perf_counter() - t0 < 1.0


def test_cli_prepare_and_cards(tmp_path, tiny_bible, monkeypatch, capsys):
    monkeypatch.setattr(Lock, "load", classmethod(lambda cls, path=None: tiny_bible))
    assert main(["prepare", "tiny_bible", "--cache", str(tmp_path / "c")]) == 0
    out = tmp_path / "datasets.md"
    assert main(["prepare", "--cards", "--cache", str(tmp_path / "c"), "--out", str(out)]) == 0
    table = out.read_text()
    assert "| `tiny_bible` | translation |" in table and "verse_pairs 40" in table
    assert "Declared but not prepared in this cache: `fashion_mnist`" in datasets_markdown(tmp_path / "c")
    assert main(["fetch", "no_such_dataset", "--cache", str(tmp_path / "c")]) == 1
    assert "unknown dataset 'no_such_dataset'" in capsys.readouterr().err


def test_length_range_keeps_only_sources_of_that_length_in_every_split(tmp_path, tiny_bible):
    from normlab.train.tasks import from_normlab_data

    prepare("tiny_bible", tmp_path / "c", lock=tiny_bible, quiet=True)
    lengths = {split: np.asarray(load("tiny_bible", split, cache=tmp_path / "c").tokens.lengths)
               for split in ("train", "valid", "test")}
    lo, hi = sorted(lengths["train"])[0], sorted(lengths["train"])[len(lengths["train"]) // 2]
    task = from_normlab_data("translation", "tiny_bible", {"cache": str(tmp_path / "c"), "length_range": [lo, hi]})
    for split, examples in task.splits.items():
        assert all(lo <= len(src) <= hi for src, _ in examples)
        assert len(examples) == int(((lengths[split] >= lo) & (lengths[split] <= hi)).sum()) > 0
    assert task.info["examples"]["train"] < 30
    with pytest.raises(ValueError, match="no train examples left"):
        from_normlab_data("translation", "tiny_bible", {"cache": str(tmp_path / "c"), "length_range": [500, 600]})
    with pytest.raises(ValueError, match=r"give \[min, max\]"):
        from_normlab_data("translation", "tiny_bible", {"cache": str(tmp_path / "c"), "length_range": [9, 3]})


def test_refetching_an_unchanged_dataset_leaves_its_stamp_alone(tmp_path, tiny_bible):
    """The workflow's prepare rule depends on the stamp: a rewrite would re-prepare and re-train everything."""
    from normlab.data.pipeline import fetch, fetched_stamp

    prepare("tiny_bible", tmp_path / "c", lock=tiny_bible, quiet=True)
    stamp = fetched_stamp("tiny_bible", tmp_path / "c")
    before = stamp.stat().st_mtime_ns
    time.sleep(0.01)
    fetch("tiny_bible", tmp_path / "c", lock=tiny_bible)
    prepare("tiny_bible", tmp_path / "c", lock=tiny_bible, quiet=True, force=True)
    assert stamp.stat().st_mtime_ns == before
