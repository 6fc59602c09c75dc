"""The translation family on a small prepared dataset in the Moses + subword-nmt format: source EOS in the
batches, and both BLEU flavours from the same hypotheses (sacreBLEU against the untokenised references,
tokenised BLEU as fairseq-generate computes it, with compound splitting where the dataset asks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from normlab import metrics
from normlab.data import mt
from normlab.data.build import _text_array
from normlab.data.store import write_prepared
from normlab.data.text import SEQ2SEQ_SPECIALS
from normlab.train import synthetic_task
from normlab.train.batching import collate, split_batches
from normlab.train.families import get_family
from normlab.train.families.translation import BeamSearchBleu
from normlab.train.tasks import from_normlab_data

NAME = "iwslt14_de_en"  # a registered translation dataset; the folder holds the test's own data
SYMBOLS = (*SEQ2SEQ_SPECIALS, "das", "ist", "gut", "well@@", "-@@", "known", "sehr", ".", "it", "&apos;s")
PAD, UNK, BOS, EOS = range(4)
ID = {s: i for i, s in enumerate(SYMBOLS)}


def ids(text: str) -> list[int]:
    return [ID[t] for t in text.split()]


PAIRS = [("das ist gut .", "it &apos;s well@@ -@@ known ."), ("sehr gut", "it &apos;s known"),
         ("das ist sehr gut .", "it &apos;s well@@ -@@ known"), ("gut", "it")]
REFERENCES = ["It's well-known.", "It's known", "It's well-known", "It"]


def write_dataset(folder, *, compound_split=False, source_eos=True):
    arrays = {}
    for split in ("train", "valid", "test"):
        src = [np.array(ids(a), dtype=np.int32) for a, _ in PAIRS]
        tgt = [np.array(ids(b), dtype=np.int32) for _, b in PAIRS]
        offsets = [np.concatenate([[0], np.cumsum([len(x) for x in side])]).astype(np.int64) for side in (src, tgt)]
        arrays[split] = {"tokens": np.concatenate(src), "offsets": offsets[0], "target": np.concatenate(tgt),
                         "target_offsets": offsets[1]}
        if split != "train":
            arrays[split]["reference_text"], arrays[split]["reference_offsets"] = _text_array(REFERENCES)
    meta = {"family": "translation", "splits": list(arrays), "vocab_size": len(SYMBOLS), "pad_id": PAD,
            "unk_id": UNK, "bos_id": BOS, "eos_id": EOS, "source_eos": source_eos,
            "text": {"pipeline": mt.PIPELINE, "source_lang": "de", "target_lang": "en", "lowercase": False,
                     "compound_split": compound_split, "bpe_merges": 2, "bpe_symbol": mt.BPE_SYMBOL}}
    write_prepared(folder / "prepared" / NAME, meta, {}, arrays, mt.MosesBpeVocabulary(SYMBOLS, "#version: 0.2\n"))
    return folder


@pytest.fixture
def cache(tmp_path):
    return write_dataset(tmp_path)


def test_sources_end_in_eos_where_the_dataset_says_so(cache):
    task = from_normlab_data("translation", NAME, {"cache": str(cache)})
    assert task.info["source_eos"] is True and task.splits["train"].source_eos
    batch = collate(task, "train", np.array([3, 0]))
    assert batch.tensors["src"].tolist() == [[ID["gut"], EOS, PAD, PAD, PAD], [*ids("das ist gut ."), EOS]]
    assert batch.tensors["src_pad"].tolist() == [[False, False, True, True, True], [False] * 5]
    assert batch.n_tokens == (2 + 5) + (2 + 7)  # sources with EOS + targets with EOS
    family = get_family("translation")
    assert family.lengths(task.splits["train"]).tolist() == [7, 4, 6, 2]  # max(source + EOS, target + EOS)
    off = from_normlab_data("translation", NAME, {"cache": str(cache), "source_eos": False})
    assert collate(off, "train", np.array([3])).tensors["src"].tolist() == [[ID["gut"]]]
    with pytest.raises(ValueError, match="data.options.source_eos: 'yes' is not valid; valid values: true, false"):
        from_normlab_data("translation", NAME, {"cache": str(cache), "source_eos": "yes"})


def test_the_default_corpus_and_synthetic_tasks_have_no_source_eos():
    task = synthetic_task("translation", seed=1, n_train=8, n_valid=4, n_test=4)
    batch = collate(task, "train", np.arange(8))
    lengths = task.splits["train"].fields["source"].lengths
    assert (~batch.tensors["src_pad"]).sum(1).tolist() == lengths.tolist()
    assert task.eos_id not in batch.tensors["src"].tolist()[int(np.argmax(lengths))]


class Hypotheses(torch.nn.Module):
    """Stands in for a trained model: beam search returns fixed hypotheses (by example index)."""

    def __init__(self, hyps):
        super().__init__()
        self.hyps = hyps

    def beam_search(self, src, src_pad, **kwargs):
        self.kwargs = kwargs
        return [self.hyps[i] for i in self.indices]


def score(task, hyps, eval_cfg=None):
    cfg = {"beam": 5, "lenpen": 1.0, "max_len_a": 1.0, "max_len_b": 50, **(eval_cfg or {})}
    bleu = BeamSearchBleu(task, "test", cfg)
    model = Hypotheses(hyps)
    for indices in split_batches(task, "test", 64, 2, seed=0):
        model.indices = indices
        bleu.add(model, collate(task, "test", indices), None, None, torch.autocast("cpu", enabled=False))
    return bleu, model


HYPS = [ids("it &apos;s well@@ -@@ known ."), ids("it &apos;s well@@ -@@ known"), ids("it &apos;s known"),
        [UNK]]


def test_both_bleu_flavours_from_the_same_hypotheses(cache):
    task = from_normlab_data("translation", NAME, {"cache": str(cache)})
    bleu, model = score(task, HYPS, {"min_len": 2})
    assert model.kwargs["min_len"] == 2 and model.kwargs["beam"] == 5
    out = bleu.result()
    tok_hyps = ["it &apos;s well-known .", "it &apos;s well-known", "it &apos;s known", "<unk>"]
    tok_refs = ["it &apos;s well-known .", "it &apos;s known", "it &apos;s well-known", "it"]
    order = [bleu.tokenized_hypotheses.index(h) for h in tok_hyps]  # batches come in length order
    assert [bleu.tokenized_references[i] for i in order] == tok_refs
    assert out["bleu_tok"] == pytest.approx(metrics.tokenized_bleu(tok_hyps, tok_refs))
    # sacreBLEU: detokenised hypotheses against the untokenised references kept at preparation
    assert [bleu.references[i] for i in order] == REFERENCES
    assert [bleu.hypotheses[i] for i in order] == ["it's well-known.", "it's well-known", "it's known", "<unk>"]
    assert out["bleu"] == pytest.approx(metrics.bleu(bleu.hypotheses, bleu.references)["bleu"])
    assert out["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert out["bleu_tok_signature"] == (
        "nrefs:1|case:mixed|tok:moses+bpe-removed|compound:no|smooth:none|scorer:fairseq-bleu4")


def test_unknown_reference_tokens_never_match(tmp_path):
    write_dataset(tmp_path)
    task = from_normlab_data("translation", NAME, {"cache": str(tmp_path)})
    bleu = BeamSearchBleu(task, "test", {"beam": 1, "lenpen": 1.0, "max_len_a": 1.0, "max_len_b": 5})
    assert bleu.text.tokenized_text([UNK, ID["gut"]], True) == "<<unk>> gut"
    assert bleu.text.tokenized_text([UNK, ID["gut"]], False) == "<unk> gut"


def test_compound_splitting_for_the_datasets_that_ask_for_it(tmp_path):
    write_dataset(tmp_path, compound_split=True)
    task = from_normlab_data("translation", NAME, {"cache": str(tmp_path)})
    out = score(task, HYPS)[0].result()
    split = [metrics.compound_split(h) for h in ("it &apos;s well-known .", "it &apos;s well-known",
                                                 "it &apos;s known", "<unk>")]
    assert split[0] == "it &apos;s well ##AT##-##AT## known ."
    refs = [metrics.compound_split(r) for r in ("it &apos;s well-known .", "it &apos;s known", "it &apos;s well-known",
                                                "it")]
    assert out["bleu_tok"] == pytest.approx(metrics.tokenized_bleu(split, refs))
    assert out["bleu_tok"] != pytest.approx(score(from_normlab_data("translation", NAME, {"cache": str(
        write_dataset(tmp_path / "plain"))}), HYPS)[0].result()["bleu_tok"])
    assert "compound:yes" in out["bleu_tok_signature"]


def test_without_a_moses_step_tokenised_bleu_uses_13a():
    task = synthetic_task("translation", seed=1, n_train=8, n_valid=4, n_test=4)
    test = task.splits["test"]
    hyps = [test[i][1].tolist() for i in range(4)]
    out = score(task, hyps)[0].result()
    assert out["bleu"] == pytest.approx(100.0) and out["bleu_tok"] == pytest.approx(100.0)
    assert "tok:13a" in out["bleu_tok_signature"]


def test_the_primary_metric_is_tokenised_bleu_only_for_data_prepared_as_the_papers(cache):
    """The published IWSLT14/WMT16 numbers are fairseq-generate's tokenised BLEU: runs on Moses data
    report it as their primary metric; other data (no Moses step) keep sacreBLEU."""
    family = get_family("translation")
    assert family.primary_metric(from_normlab_data("translation", NAME, {"cache": str(cache)})) == "bleu_tok"
    assert family.primary_metric(synthetic_task("translation", seed=1, n_train=8, n_valid=4, n_test=4)) == "bleu"
