"""Batching, schedules, metrics and checkpoint averaging against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from normlab.metrics import bleu, entity_f1, perplexity
from normlab.train.batching import pad_sequences, token_budget_batches
from normlab.train.checkpoint import average_state_dicts, save
from normlab.train.schedules import learning_rate


def test_token_budget_batches_cover_everything_once_within_budget():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 40, size=500)
    batches = token_budget_batches(lengths, max_tokens=200, seed=1)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(500))
    for b in batches:
        assert len(b) * lengths[b].max() <= 200
    # similar lengths together: the spread within a batch is small compared with the data's
    assert np.mean([np.ptp(lengths[b]) for b in batches]) < 3
    with pytest.raises(ValueError, match="max_tokens"):
        token_budget_batches(np.array([300]), max_tokens=200, seed=1)


def test_pad_sequences_matches_a_naive_loop():
    seqs = [np.array([5, 6, 7]), np.array([8]), np.array([9, 10])]
    ids, pad = pad_sequences(seqs, pad_id=0, prefix=1, suffix=2)
    expected = [[1, 5, 6, 7, 2], [1, 8, 2, 0, 0], [1, 9, 10, 2, 0]]
    assert ids.tolist() == expected
    assert pad.tolist() == [[x == 0 for x in row] for row in expected]


def test_inverse_sqrt_and_cosine_schedules():
    optim = {
        "lr": 1e-3,
        "warmup_steps": 100,
        "warmup_init_lr": 0.0,
        "min_lr": 0.0,
        "schedule": "inverse_sqrt",
    }
    assert learning_rate(50, optim, 1000) == pytest.approx(5e-4)
    assert learning_rate(100, optim, 1000) == pytest.approx(1e-3)
    assert learning_rate(400, optim, 1000) == pytest.approx(5e-4)
    cosine = {**optim, "schedule": "cosine", "min_lr": 1e-5}
    assert learning_rate(550, cosine, 1000) == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5))
    assert learning_rate(1000, cosine, 1000) == pytest.approx(1e-5)


def test_bleu_is_sacrebleu_with_its_signature():
    refs = ["the cat sat on the mat .", "a dog barked loudly ."]
    perfect = bleu(refs, refs)
    assert perfect["bleu"] == pytest.approx(100.0)
    assert perfect["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert bleu(["the cat sat on a mat .", "a dog barked ."], refs)["bleu"] < 100


def test_entity_f1_is_strict_iob2():
    truth = [["B-PER", "I-PER", "O", "B-LOC"]]
    assert entity_f1(truth, truth) == 1.0
    # an entity starting with I- is not an entity in strict IOB2 (the lenient default would count it)
    assert entity_f1(truth, [["I-PER", "I-PER", "O", "B-LOC"]]) == pytest.approx(2 * 0.5 * 1.0 / 1.5 * 1.0)


def test_perplexity():
    assert perplexity(2 * math.log(7), 2) == pytest.approx(7.0)


def test_checkpoint_average(tmp_path):
    states = [
        {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)},
        {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(4)},
    ]
    for i, s in enumerate(states):
        save(tmp_path / f"step_{i}.pt", {"model": s})
    avg = average_state_dicts([tmp_path / "step_0.pt", tmp_path / "step_1.pt"])
    assert avg["w"].tolist() == [2.0, 4.0] and int(avg["n"]) == 4
