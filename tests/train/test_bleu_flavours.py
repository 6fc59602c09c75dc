"""Tokenised BLEU as fairseq-generate / multi-bleu.perl compute it, against BLEU worked out by hand and
against a plain count of clipped n-grams; compound splitting as fairseq's compound_split_bleu.sh."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from normlab.metrics import HIGHER_IS_BETTER, bleu, compound_split, tokenized_bleu


def test_a_toy_corpus_worked_out_by_hand_with_the_brevity_penalty():
    hyps = ["a b c d x", "x y z w"]
    refs = ["a b c d e f g", "x y z w"]
    # clipped matches / counts per order, summed over both sentences:
    #   1-grams 4/5 + 4/4 = 8/9, 2-grams 3/4 + 3/3 = 6/7, 3-grams 2/3 + 2/2 = 4/5, 4-grams 1/2 + 1/1 = 2/3
    # hypothesis length 9 < reference length 11: brevity penalty exp(1 - 11/9)
    expected = 100 * math.exp(1 - 11 / 9) * (8 / 9 * 6 / 7 * 4 / 5 * 2 / 3) ** 0.25
    assert tokenized_bleu(hyps, refs) == pytest.approx(expected, rel=1e-12)  # 63.93
    # longer than the reference: no penalty; precisions 4/5, 3/4, 2/3, 1/2
    assert tokenized_bleu(["a b c d e"], ["a b c d"]) == pytest.approx(100 * (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25)


def test_no_smoothing_clipping_and_case():
    # no 4-gram in common: 0, as fairseq and multi-bleu.perl (sacreBLEU's default smoothing would not give 0)
    assert tokenized_bleu(["the cat sat on the mat"], ["the cat is on the mat"]) == 0.0
    assert bleu(["the cat sat on the mat"], ["the cat is on the mat"], tokenize="none")["bleu"] > 0
    # a repeated word matches only as often as the reference has it
    hyp, ref = "the the the the a b c", "the a b c x"
    expected = 100 * (4 / 7 * 3 / 6 * 2 / 5 * 1 / 4) ** 0.25  # 1-grams: the x1 + a b c
    assert tokenized_bleu([hyp], [ref]) == pytest.approx(expected)
    assert tokenized_bleu(["The a b c"], ["the a b c"]) < 100.0  # case-sensitive (the data decides the case)


def _plain_bleu(hyps, refs):
    """BLEU-4 by counting: clipped n-gram matches over the corpus, no smoothing, brevity penalty."""
    match, total = [0] * 4, [0] * 4
    hyp_len = ref_len = 0
    for h, r in zip(hyps, refs, strict=True):
        h, r = h.split(), r.split()
        hyp_len, ref_len = hyp_len + len(h), ref_len + len(r)
        for n in range(1, 5):
            hc = Counter(tuple(h[i : i + n]) for i in range(len(h) - n + 1))
            rc = Counter(tuple(r[i : i + n]) for i in range(len(r) - n + 1))
            match[n - 1] += sum(min(c, rc[g]) for g, c in hc.items())
            total[n - 1] += max(len(h) - n + 1, 0)
    if min(match) == 0:
        return 0.0
    bp = 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / hyp_len)
    return 100 * bp * math.exp(sum(math.log(m / t) for m, t in zip(match, total, strict=True)) / 4)


@pytest.mark.parametrize("seed", range(5))
def test_equals_a_plain_count_of_clipped_ngrams(seed):
    rng = random.Random(seed)
    words = "a b c d e f".split()
    refs = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(30)]
    hyps = [" ".join(w if rng.random() < 0.7 else rng.choice(words) for w in r.split()[: rng.randint(2, 12)])
            for r in refs]
    assert tokenized_bleu(hyps, refs) == pytest.approx(_plain_bleu(hyps, refs), rel=1e-9)


def test_an_empty_sentence_counts_as_its_eos_as_in_fairseqs_scorer():
    # fairseq trims the EOS of a sentence unless nothing else is left: an empty hypothesis is one token long
    assert tokenized_bleu(["a b c d", ""], ["a b c d", "e f"]) == pytest.approx(
        _plain_bleu(["a b c d", "</s>"], ["a b c d", "e f"]))


def test_compound_splitting_as_compound_split_bleu_sh():
    assert compound_split("Café-Liebhaber trinken 3-4 Tassen") == (
        "Café ##AT##-##AT## Liebhaber trinken 3 ##AT##-##AT## 4 Tassen")
    # Perl's s{(\S)-(\S)}{...}g is left to right without overlap: in a-b-c the second hyphen stays
    assert compound_split("a-b-c x-y") == "a ##AT##-##AT## b-c x ##AT##-##AT## y"
    assert compound_split("a - b -c d-") == "a - b -c d-"


def test_both_flavours_have_a_direction():
    assert HIGHER_IS_BETTER["bleu"] and HIGHER_IS_BETTER["bleu_tok"]
    assert "case:lc" in bleu(["a b"], ["A B"], lowercase=True)["bleu_signature"]
    assert bleu(["a b c d"], ["A B C D"], lowercase=True)["bleu"] == pytest.approx(100.0)
