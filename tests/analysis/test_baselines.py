"""normlab baselines: the trivial baselines on hand-made prepared splits, with the run's selection."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from normlab.analysis import baselines as B
from normlab.data.selection import selected
from normlab.data.store import DatasetSplit, TokenSequences


def seqs(*rows) -> TokenSequences:
    lengths = [len(r) for r in rows]
    return TokenSequences(np.concatenate([np.asarray(r, dtype=np.int32) for r in rows]),
                          np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))


def split(family, name="train", **fields) -> DatasetSplit:
    return DatasetSplit(name="toy", split=name, family=family, **fields)


def test_majority_class_and_tag_on_the_selected_examples():
    train = split("classification", tokens=seqs([1], [2], [3], [4]), labels=np.array([1, 1, 0, 1]))
    test = split("classification", "test", tokens=seqs([1], [2], [3], [4], [5]), labels=np.array([1, 0, 0, 0, 1]))
    (row,) = B.baseline_rows({"train": train, "test": test}, "classification", {})
    assert row == dict(metric="accuracy", baseline="majority", value=0.4, n_examples=5, n_targets=5)
    # max_eval_examples: the first 2 test examples, as the engine evaluates them
    (row,) = B.baseline_rows({"train": train, "test": test}, "classification", {"max_eval_examples": 2})
    assert row["value"] == 0.5 and row["n_examples"] == 2
    names = ("O", "B-PER", "I-PER")
    tr = split("tagging", tokens=seqs([5, 6, 7], [5, 6]), tags=seqs([0, 1, 2], [0, 0]), label_names=names)
    te = split("tagging", "test", tokens=seqs([5, 6, 7, 8], [9]), tags=seqs([1, 2, 0, 0], [1]), label_names=names)
    acc, f1 = B.baseline_rows({"train": tr, "test": te}, "tagging", {"max_len": 3})
    # max_len 3: test tokens [B, I, O] and [B]: 1 of 4 is O (the majority tag)
    assert acc["value"] == 0.25 and acc["n_targets"] == 4
    assert f1["metric"] == "f1" and f1["baseline"] == "all_o" and f1["value"] == 0.0


def test_unigram_perplexity_by_hand():
    # vocabulary 4: <pad>=0, <unk>=1, <eos>=2, "a"=3; the stored sentences end in <eos>
    train = split("lm", tokens=seqs([3, 3, 2], [3, 2]), vocab_size=4, eos_id=2)
    test = split("lm", "test", tokens=seqs([3, 2]), vocab_size=4, eos_id=2)
    (row,) = B.baseline_rows({"train": train, "test": test}, "lm", {})
    # training targets: a a <eos> a <eos> -> counts (0, 0, 2, 3); add-one over 4: p(a) = 4/9, p(<eos>) = 3/9
    expected = math.exp(-(math.log(4 / 9) + math.log(3 / 9)) / 2)
    assert row["value"] == pytest.approx(expected) and row["n_targets"] == 2


def test_copy_source_bleu_is_sacrebleu_of_the_source(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = "<pad> <unk> la casa roja es grande the red house is big".split()
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    # the second source is already English: copying it is a perfect translation, the first scores nothing
    src, tgt = seqs([2, 3, 4, 5, 6], [7, 8, 9, 10, 11]), seqs([7, 8, 9, 10, 11], [7, 8, 9, 10, 11])
    train = split("translation", tokens=src, target=tgt, tokenizer=tok)
    test = split("translation", "test", tokens=src, target=tgt, tokenizer=tok)
    row, tok_row = B.baseline_rows({"train": train, "test": test}, "translation", {})
    from normlab.metrics import bleu, tokenized_bleu

    hyps, refs = ["la casa roja es grande", "the red house is big"], ["the red house is big"] * 2
    assert row["metric"] == "bleu" and row["value"] == pytest.approx(bleu(hyps, refs)["bleu"])
    assert 0 < row["value"] < 100
    # the papers' flavour, as the engine computes it for data without a Moses step: 13a words, no smoothing
    assert tok_row["metric"] == "bleu_tok" and tok_row["baseline"] == "copy_source_tok"
    assert tok_row["value"] == pytest.approx(tokenized_bleu(hyps, refs))


def test_selection_is_the_engines_length_range_then_limits():
    s = split("lm", "test", tokens=seqs([3, 2], [3, 3, 3, 2], [3, 3, 2], [3, 3, 3, 3, 2]), vocab_size=4, eos_id=2)
    # LM lengths without <eos>: 1, 3, 2, 4
    assert selected(s, "test", {"length_range": [2, 4]}).tolist() == [1, 2, 3]
    assert selected(s, "test", {"length_range": [2, 4], "max_eval_examples": 2}).tolist() == [1, 2]
    assert selected(s, "train", {"length_range": [2, 4], "max_eval_examples": 2}).tolist() == [1, 2, 3]
    # the options are the run config's: one check, before any selection (ConfigError is a ValueError)
    from normlab.train.tasks import check_data_options

    with pytest.raises(ValueError, match="unknown key"):
        check_data_options("normlab", "lm", {"max_lenght": 3})


def test_the_command_writes_the_table_and_names_an_unprepared_corpus(tmp_path, capsys):
    from normlab.cli import main

    with pytest.raises(SystemExit, match="rt_polarity is not prepared.*run `normlab prepare rt_polarity`"):
        main(["baselines", "--settings", json.dumps([dict(dataset="x", corpus="rt_polarity",
                                                          family="classification")]),
              "--cache", str(tmp_path), "--out", str(tmp_path / "b.csv")])
    with pytest.raises(SystemExit, match="unknown dataset 'imbd'"):
        main(["baselines", "--settings", json.dumps([dict(dataset="x", corpus="imbd", family="lm")]),
              "--cache", str(tmp_path), "--out", str(tmp_path / "b.csv")])
    with pytest.raises(SystemExit, match="not valid JSON"):
        main(["baselines", "--settings", "[oops", "--out", str(tmp_path / "b.csv")])
    assert not (tmp_path / "b.csv").exists()


def test_workflow_settings_carry_each_settings_data_options():
    from normlab.workflow import baseline_settings, load_file

    cfg, cells, runs = load_file("config/scale.yaml", "workflows/schemas/config.schema.yaml")
    settings = {s["dataset"]: s for s in baseline_settings(cfg, cells, runs)}
    assert settings["bible_es_en.sentence_length-short"]["data_options"] == {"length_range": [1, 18],
                                                                             "max_eval_examples": 500}
    assert settings["brown_pos.base"]["family"] == "tagging" and settings["brown_pos.base"]["corpus"] == "brown_pos"
    assert len(settings) == len({c.dataset for c in cells})
    assert pd.Series([s["bleu_tokenize"] for s in settings.values()]).eq("13a").all()
