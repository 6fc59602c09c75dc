"""Beam search against brute force and against a per-sentence reference of fairseq's rules.

The toy model: a few regular tokens whose next-token distribution depends on the source and on the
whole prefix (a small tanh recurrence), plus "dead" tokens of probability 0 that only make the
vocabulary big enough for a beam that holds every hypothesis (the beam is at most vocab - 1)."""

from __future__ import annotations

import itertools

import pytest
import torch

from normlab.models import ModelOptions, build_model
from normlab.models.translation import TranslationTransformer

PAD, BOS, EOS = 0, 1, 2
REGULAR = (3, 4, 5)


class ToyModel(TranslationTransformer):
    def __init__(self, vocab_size: int, seed: int):
        super().__init__(ModelOptions(d_model=8, n_heads=2, d_ff=8, n_layers=1, dropout=0.0), vocab_size, PAD, BOS, EOS)
        g = torch.Generator().manual_seed(seed)
        self.src_table = torch.randn(vocab_size, 6, generator=g, dtype=torch.float64)
        self.w = torch.randn(6, 6, generator=g, dtype=torch.float64)
        self.u = torch.randn(vocab_size, 6, generator=g, dtype=torch.float64) * 1.5
        self.v = torch.randn(6, vocab_size, generator=g, dtype=torch.float64) * 2.0
        self.dead = torch.ones(vocab_size, dtype=torch.bool)
        self.dead[[PAD, BOS, EOS, *REGULAR]] = False

    def encode(self, src, src_pad):
        return self.src_table[src].masked_fill(src_pad[..., None], 0.0)

    def decode(self, prev, prev_pad, memory, src_pad, last_only=False):
        h = torch.tanh(memory.sum(1))
        for t in range(1, prev.shape[1]):
            h = torch.tanh(h @ self.w + self.u[prev[:, t]])
        logits = (h @ self.v).masked_fill(self.dead, float("-inf"))
        return logits[:, None, :]


def toy_logprobs(model, src, prefix):
    """The model's next-token log-probabilities after `prefix` (without BOS) for one source row."""
    prev = torch.tensor([[BOS, *prefix]])
    return model._next_logprobs(prev, model.encode(src[None], torch.zeros(1, len(src), dtype=torch.bool)), None)[0]


def brute_force(model, src, max_len, lenpen, min_len=1):
    """Every hypothesis (1..max_len regular tokens, then EOS) with its fairseq-normalised score."""
    out = []
    for k in range(min_len, max_len + 1):
        for seq in itertools.product(REGULAR, repeat=k):
            total = 0.0
            for t, tok in enumerate(seq):
                logp = toy_logprobs(model, src, seq[:t])
                if t < min_len:
                    logp[EOS] = float("-inf")
                total += float(logp[tok])
            total += float(toy_logprobs(model, src, seq)[EOS])
            out.append((list(seq), total / (k + 1) ** lenpen))
    return sorted(out, key=lambda h: -h[1])


def reference_beam(logprobs, beam, max_len, lenpen, min_len=1):
    """fairseq's rules, one sentence at a time with Python lists (independent of the vectorised code);
    ``logprobs(prefix)``: the next-token log-probabilities after a prefix (without BOS)."""
    live, final = [((), 0.0)], []
    for step in range(max_len + 1):
        cands = []
        for prefix, score in live:
            logp = logprobs(prefix).clone()
            if step < min_len:
                logp[EOS] = float("-inf")
            for tok in range(logp.numel()):
                if (step < max_len or tok == EOS) and logp[tok] > float("-inf"):
                    cands.append((score + float(logp[tok]), prefix, tok))
        cands = sorted(cands, key=lambda c: -c[0])[: 2 * beam]
        for score, prefix, tok in cands[:beam]:
            if tok == EOS and len(final) < beam:
                final.append((list(prefix), score / (step + 1) ** lenpen))
        if len(final) >= beam or step == max_len:
            break
        live = [(prefix + (tok,), score) for score, prefix, tok in cands if tok != EOS][:beam]
    return sorted(final, key=lambda h: -h[1])


def batch(rows):
    width = max(len(r) for r in rows)
    src = torch.tensor([r + [PAD] * (width - len(r)) for r in rows])
    return src, src == PAD


SOURCES = [[3, 4, 5, 3], [5, 5], [4, 3, 3]]


@pytest.mark.parametrize("lenpen", [0.0, 1.0, 1.7])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_beam_that_holds_every_hypothesis_finds_the_brute_force_argmax(seed, lenpen):
    max_len = 3  # 3 + 9 + 27 hypotheses; at most 36 candidates a step: all fit in a beam of 63
    model = ToyModel(vocab_size=64, seed=seed).eval()
    src, pad = batch(SOURCES)
    got = model.generate(src, pad, beam=63, lenpen=lenpen, max_len_a=0.0, max_len_b=max_len)
    for i, row in enumerate(SOURCES):
        expected = brute_force(model, torch.tensor(row), max_len, lenpen)
        assert got[i][0][0] == expected[0][0]
        assert got[i][0][1] == pytest.approx(expected[0][1], abs=1e-4)
        # every hypothesis was finalised, with its score
        scores, expected_scores = ({tuple(h): s for h, s in hyps} for hyps in (got[i], expected))
        assert scores.keys() == expected_scores.keys()
        assert [scores[h] for h in expected_scores] == pytest.approx(list(expected_scores.values()), abs=1e-4)
    best = model.beam_search(src, pad, beam=63, lenpen=lenpen, max_len_a=0.0, max_len_b=max_len)
    assert best == [brute_force(model, torch.tensor(row), max_len, lenpen)[0][0] for row in SOURCES]


@pytest.mark.parametrize("beam", [1, 2, 3, 5])
@pytest.mark.parametrize("seed", [3, 4])
def test_small_beams_follow_fairseqs_rules_sentence_by_sentence(seed, beam):
    """Finished hypotheses leave the beam (they cannot be pushed out), 2 x beam candidates a step,
    the sentence stops at `beam` finalised, EOS forced at the maximum length -- as a plain
    per-sentence implementation of those rules; the batch (different source lengths) changes nothing."""
    model = ToyModel(vocab_size=64, seed=seed).eval()
    src, pad = batch(SOURCES)
    max_len = 5
    got = model.generate(src, pad, beam=beam, lenpen=1.0, max_len_a=0.0, max_len_b=max_len)
    for i, row in enumerate(SOURCES):
        expected = reference_beam(lambda prefix, row=row: toy_logprobs(model, torch.tensor(row), prefix), beam,
                                  max_len, 1.0)
        assert [h for h, _ in got[i]] == [h for h, _ in expected]
        assert [s for _, s in got[i]] == pytest.approx([s for _, s in expected], abs=1e-4)
        assert len(got[i]) == beam and all(1 <= len(h) <= max_len for h, _ in got[i])


def test_beam_one_is_greedy_and_min_len_forbids_early_eos():
    model = ToyModel(vocab_size=64, seed=5).eval()
    src, pad = batch(SOURCES)
    for min_len in (1, 2, 4):
        greedy = model.greedy(src, pad, max_len_a=0.0, max_len_b=6, min_len=min_len)
        assert greedy == model.beam_search(src, pad, beam=1, max_len_a=0.0, max_len_b=6, min_len=min_len)
        assert all(min_len <= len(h) <= 6 for h in greedy)
        nbest = model.generate(src, pad, beam=4, max_len_a=0.0, max_len_b=6, min_len=min_len)
        assert all(len(h) >= min_len for hyps in nbest for h, _ in hyps)
    expected = brute_force(model, torch.tensor(SOURCES[1]), 3, 1.0, min_len=2)
    got = model.generate(src, pad, beam=63, max_len_a=0.0, max_len_b=3, min_len=2)[1]
    assert got[0][0] == expected[0][0] and len(got) == len(expected) == 9 + 27
    with pytest.raises(ValueError, match="min_len=7 is larger than the maximum length 6"):
        model.generate(src, pad, max_len_a=0.0, max_len_b=6, min_len=7)


def test_the_maximum_length_follows_the_batchs_source_width():
    """fairseq: max_len = max_len_a * (source width of the batch) + max_len_b, at most max_positions - 1."""
    model = ToyModel(vocab_size=64, seed=6).eval()
    src, pad = batch(SOURCES)  # width 4
    hyps = model.generate(src, pad, beam=63, max_len_a=0.5, max_len_b=0)  # max_len 2: 3 + 9 hypotheses
    assert all(len(h) == 12 and max(len(x) for x, _ in h) == 2 for h in hyps)
    small = TranslationTransformer(ModelOptions(d_model=8, n_heads=2, d_ff=8, n_layers=1, max_positions=5), 64,
                                   PAD, BOS, EOS)
    assert small._max_len(pad, 1.0, 50) == 4


def test_the_vectorised_search_on_a_real_model_matches_the_reference():
    torch.manual_seed(0)
    model = build_model("translation", dict(d_model=16, n_heads=2, d_ff=32, n_layers=1, dropout=0.0),
                        vocab_size=9, pad_id=PAD, bos_id=BOS, eos_id=EOS).eval()
    with torch.no_grad():  # a peaky, prefix-dependent model
        model.embed.weight.mul_(4.0)
    src, pad = batch([[3, 4, 5, 6, 7], [8, 3], [6, 6, 6]])
    got = model.generate(src, pad, beam=3, lenpen=1.0, max_len_a=0.0, max_len_b=4)

    def logprobs(i, prefix):
        return model._next_logprobs(torch.tensor([[BOS, *prefix]]), model.encode(src[i : i + 1], pad[i : i + 1]),
                                    pad[i : i + 1])[0].detach()

    for i in range(3):
        expected = reference_beam(lambda prefix, i=i: logprobs(i, prefix), 3, 4, 1.0)
        assert [h for h, _ in got[i]] == [h for h, _ in expected]
        assert [s for _, s in got[i]] == pytest.approx([s for _, s in expected], abs=1e-4)
