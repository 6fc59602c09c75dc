"""The CRF tagger in the tagging family: its loss, Viterbi in the evaluation, BIOES, character ids."""

from __future__ import annotations

import json
from contextlib import nullcontext

import numpy as np
import pytest
import torch

from normlab import metrics
from normlab.data.build import Parsed, build_tagging
from normlab.data.store import write_prepared
from normlab.models import ModelOptions, SequenceTagger
from normlab.models.crf import convert_iob2
from normlab.models.crf_tagger import CRFTagger, char_ids, char_vocabulary
from normlab.train import ConfigError, synthetic_task, train, validate
from normlab.train.batching import collate, split_batches
from normlab.train.examples import Sequences, TaskData
from normlab.train.families import get_family
from normlab.train.families.tagging import TaggedExamples, converted_tags
from normlab.train.tasks import from_normlab_data

from .conftest import run_config

TAGGING = get_family("tagging")


def crf_config(crf_options: dict | None = None, **sections) -> dict:
    model = {"d_model": 32, "n_heads": 2, "d_ff": 64, "n_layers": 1, "norm": "bn", "crf": True,
             "crf_options": crf_options or {}}
    return run_config("tagging", **{"model": model, **sections})


class PlantedEmissions(CRFTagger):
    """A CRF tagger whose emissions are fixed (and whose CRF scores are 0): only the constraints decide."""

    def __init__(self, emissions: torch.Tensor, label_names: list[str]):
        super().__init__(ModelOptions(d_model=8, n_heads=2, d_ff=8, n_layers=1), 10, 0, len(label_names),
                         label_names=label_names, tag_scheme="iob2")
        for p in (self.crf.transitions, self.crf.start, self.crf.end):
            torch.nn.init.zeros_(p)
        self.planted = emissions

    def forward(self, tokens, pad_mask=None, chars=None):
        return self.planted[: tokens.shape[0], : tokens.shape[1]]


def test_the_evaluation_predicts_by_viterbi_under_the_constraints_not_argmax():
    """Emissions whose argmax is O then I-ENT (not an entity in strict IOB2); Viterbi, forbidden O -> I-ENT,
    finds B-ENT I-ENT, the gold entity."""
    names = ["O", "B-ENT", "I-ENT"]
    planted = torch.tensor([[[0.45, 0.35, 0.20], [0.05, 0.05, 0.90]]]).log()
    gold = Sequences.from_list([np.array([1, 2])])
    split = TaggedExamples(tokens=Sequences.from_list([np.array([5, 6])]), tags=gold)
    task = TaskData("tagging", {"train": split, "valid": split, "test": split}, vocab_size=10,
                    label_names=names, tag_scheme="iob2", info={"crf": {"n_chars": 0, "max_word_len": None}})
    model = PlantedEmissions(planted, names).eval()
    batches = split_batches(task, "test", 64, 8, seed=0)
    with torch.no_grad():
        out = TAGGING.evaluate(model, task, "test", batches, torch.device("cpu"), {}, False, nullcontext())
    assert planted.argmax(-1).tolist() == [[0, 2]]
    assert out["f1"] == 1.0 and out["accuracy"] == 1.0  # Viterbi: B-ENT I-ENT
    assert metrics.entity_f1([["B-ENT", "I-ENT"]], [["O", "I-ENT"]]) == 0.0  # what argmax would have scored
    nll = model.crf.nll(planted, torch.tensor([[1, 2]])).item()
    assert out["loss"] == pytest.approx(nll) and out["n_targets"] == 1  # the CRF's NLL per sentence
    # the plain tagger of the same family keeps argmax and cross-entropy
    plain = SequenceTagger(ModelOptions(d_model=8, n_heads=2, d_ff=8, n_layers=1), 10, 0, 3)
    assert torch.equal(TAGGING.predict(plain, collate(task, "test", np.array([0])), planted), planted.argmax(-1))


def test_a_crf_batch_counts_sentences_and_its_loss_is_the_mean_sentence_nll():
    cfg = validate(crf_config())
    task = TAGGING.for_run(synthetic_task("tagging", seed=1, n_train=40, n_valid=8, n_test=8), cfg)
    model = TAGGING.build_model(ModelOptions(**cfg["model"]), task)
    assert isinstance(model, CRFTagger) and model.chars is None
    batch = collate(task, "train", np.arange(6))
    assert batch.n_targets == 6 and batch.n_tokens == int((~batch.tensors["pad_mask"]).sum())
    t = batch.tensors
    torch.manual_seed(0)
    loss = TAGGING.loss(model.eval(), batch, 0.0)
    assert loss.item() == pytest.approx(model.loss(t["tokens"], t["tags"], t["pad_mask"]).item())
    plain = synthetic_task("tagging", seed=1, n_train=40, n_valid=8, n_test=8)
    assert collate(plain, "train", np.arange(6)).n_targets == batch.n_tokens  # without a CRF: tokens


def bioes_by_hand(tags: list[str]) -> list[str]:
    out = []
    for i, tag in enumerate(tags):
        following = tags[i + 1] if i + 1 < len(tags) else "O"
        if tag == "O":
            out.append(tag)
        elif following != "I-" + tag[2:]:
            out.append(("S-" if tag[0] == "B" else "E-") + tag[2:])
        else:
            out.append(tag)
    return out


def test_iob2_tags_convert_to_bioes_with_the_same_entities():
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    sentences = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "B-LOC", "I-LOC", "I-LOC"], ["O"], ["I-PER"], []]
    index = {n: i for i, n in enumerate(names)}
    seqs = Sequences.from_list([np.array([index[t] for t in s], dtype=np.int16) for s in sentences])
    window = Sequences(seqs.ids, seqs.starts[:4], np.minimum(seqs.lengths[:4], 3))  # as data.options.max_len cuts
    new_names, table = convert_iob2(names, "bioes")
    for view, expected_sentences in ((seqs, sentences), (window, [s[:3] for s in sentences[:4]])):
        converted = converted_tags(view, table.numpy())
        got = [[new_names[i] for i in converted[k]] for k in range(len(converted))]
        assert got == [bioes_by_hand(s) for s in expected_sentences]
    gold = [bioes_by_hand(s) for s in sentences[:3]]
    assert metrics.entity_f1(gold, gold, "bioes") == 1.0
    # a valid prediction (what constrained Viterbi returns) scores the same in both schemes
    predicted = [["B-PER", "E-PER", "O", "S-LOC"], ["S-LOC", "B-LOC", "E-LOC", "O"], ["O"]]
    as_iob2 = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "B-LOC", "I-LOC", "O"], ["O"]]
    assert metrics.entity_f1(gold, predicted, "bioes") == pytest.approx(0.75)  # 3 of 4 entities, 3 of 4 right
    assert metrics.entity_f1(sentences[:3], as_iob2, "iob2") == pytest.approx(0.75)


@pytest.fixture
def prepared_ner(tmp_path):
    """A prepared NER dataset with every token's characters, built by the data layer's own builder;
    the test split has words the training split never saw."""
    splits = {
        "train": [(["Peter", "Blackburn", "said"], ["B-PER", "I-PER", "O"]),
                  (["EU", "rejects", "German", "call"], ["B-ORG", "O", "B-MISC", "O"]),
                  (["Peter", "said", "EU"], ["B-PER", "O", "B-ORG"])],
        "valid": [(["German", "said"], ["B-MISC", "O"])],
        "test": [(["Émile", "Zola", "said", "Peter"], ["B-PER", "I-PER", "O", "B-PER"])],
    }
    meta, _, arrays, tok = build_tagging(Parsed(splits), {"chars": True})
    write_prepared(tmp_path / "prepared" / "conll2003", {**meta, "splits": list(arrays)}, {}, arrays, tok)
    return tmp_path, splits


def test_character_ids_come_from_the_words_of_the_data_out_of_vocabulary_words_included(prepared_ner):
    cache, splits = prepared_ner
    cfg = validate(crf_config({"char_cnn": True, "tag_scheme": "bioes", "char_min_freq": 2},
                              data={"source": "normlab", "name": "conll2003", "options": {"cache": str(cache)}}))
    task = TAGGING.for_run(from_normlab_data("tagging", "conll2003", {"cache": str(cache)}), cfg)
    words = {s: [w for w, _ in rows] for s, rows in splits.items()}
    vocab = char_vocabulary([w for sentence in words["train"] for w in sentence], min_freq=2)
    assert task.info["crf"]["n_chars"] == len(vocab) + 2
    for split in ("train", "test"):
        batch = collate(task, split, np.arange(len(words[split])))
        expected = char_ids(words[split], vocab)  # the tagger's own (Python) construction
        assert torch.equal(batch.tensors["chars"], expected), split
    assert task.tag_scheme == "bioes" and "S-PER" in task.label_names and batch.n_targets == 1
    test_tags = [task.label_names[i] for i in collate(task, "test", np.array([0])).tensors["tags"][0].tolist()]
    assert test_tags == ["B-PER", "E-PER", "O", "S-PER"]
    model = TAGGING.build_model(ModelOptions(**cfg["model"]), task)
    assert model.chars is not None and model.chars.embed.num_embeddings == len(vocab) + 2
    assert model.unk_id == task.info["unk_id"] == 1 and model.crf.allowed is not None


def test_character_features_need_prepared_characters(tmp_path):
    splits = {s: [(["a", "b"], ["O", "B-X"])] for s in ("train", "valid", "test")}
    meta, _, arrays, tok = build_tagging(Parsed(splits), {})
    write_prepared(tmp_path / "prepared" / "conll2003", {**meta, "splits": list(arrays)}, {}, arrays, tok)
    task = from_normlab_data("tagging", "conll2003", {"cache": str(tmp_path)})
    with pytest.raises(ValueError, match="prepared without them; run `normlab prepare conll2003 --force`"):
        TAGGING.for_run(task, validate(crf_config({"char_cnn": True})))


def test_the_crf_tagger_trains_through_the_engine(tmp_path):
    cfg = crf_config({"tag_scheme": "bioes", "char_cnn": True, "fc_dropout": 0.2},
                     train={"max_steps": 60, "log_every": 10}, optim={"lr": 3e-3, "warmup_steps": 10})
    final = train(cfg, tmp_path / "run")
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert final["status"] == "completed" and final["primary_metric"] == "f1"
    assert losses[-1] < 0.6 * losses[0], losses
    test = final["test"]["population"]
    assert test["n_targets"] == 32 and 0 < test["f1"] <= 1 and test["accuracy"] > 0.7


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"crf_options": {"char_cnn": True}}, "model.crf_options apply to a CRF tagger: set model.crf: true"),
        ({"crf": True, "crf_options": {"tag_scheme": "bmes"}}, "tag_scheme: 'bmes' is not valid"),
        ({"crf": True, "crf_options": {"char_cnnn": True}}, r"unknown key\(s\) model.crf_options.char_cnnn"),
    ],
)
def test_crf_config_errors_name_the_option(model, message):
    with pytest.raises(ConfigError, match=message):
        validate(run_config("tagging", model=model))
    with pytest.raises(ConfigError, match="model.crf applies to task tagging, not 'lm'"):
        validate(run_config("lm", model={"crf": True}))
    with pytest.raises(ConfigError, match="label_smoothing must be 0 with model.crf"):
        validate(run_config("tagging", model={"crf": True}, optim={"label_smoothing": 0.1}))
