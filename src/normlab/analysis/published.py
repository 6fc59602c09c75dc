"""The published numbers our tables print beside ours, keyed by our dataset name, with their source.

Only datasets that are the *same* as the paper's get a number: a stand-in (``bible_es_en`` for IWSLT14,
``brown_lm`` for PTB) never does.  What could be read of each paper, and where: docs/papers.md and
docs/paper_config.md.
"""

from __future__ import annotations

RBN_SOURCE = ("Wang, Wu, Huang (NeurIPS 2022), via the benchmark list credited to the paper (wizwand); "
              "probably RBN's best entry, placement not stated; the paper's full Table 2 could not be read, "
              "so these are the only reference numbers")

# dataset -> (metric, value): the RBN paper (claims.md, "Published numbers")
RBN_PAPER: dict[str, tuple[str, float]] = {
    "iwslt14_de_en": ("bleu_tok", 35.6),  # fairseq-generate's tokenised BLEU
    "wmt16_en_de": ("bleu_tok", 26.5),
    "ptb": ("ppl", 43.2),
    "wikitext103": ("ppl", 17.1),
    "resume": ("f1", 94.8),
    "imdb": ("accuracy", 84.5),
    "yelp_polarity": ("accuracy", 93.6),
    "dbpedia": ("accuracy", 97.6),
}

LN_FAMILY_SOURCE = ("Xu et al. (NeurIPS 2019), the authors' poster, Tables A-C (Pre-LN for translation; "
                    "RT: 4-layer Transformer encoder)")

# dataset -> norm -> value (None = the paper reports a divergence).  Only our datasets that are the
# paper's: IWSLT14 De-En (BLEU) and RT (sentence polarity, accuracy %).  The paper's PTB is dependency
# parsing (UAS) and its En-De is WMT14, so neither matches our ptb (LM) or wmt16_en_de.
LN_FAMILY_PAPER: dict[str, dict[str, float | None]] = {
    "iwslt14_de_en": {"none": 34.0, "ln": 35.5, "ln_simple": 35.5, "detachnorm": 33.9, "adanorm": 35.6},
    "rt_polarity": {"none": 76.85, "ln": 77.21, "ln_simple": 76.66, "detachnorm": 76.40, "adanorm": 77.50},
}
LN_FAMILY_METRIC = {"iwslt14_de_en": "bleu_tok", "rt_polarity": "accuracy"}

# The poster's counts behind claims B1, B2, B5 (8 datasets), and the RBN paper's 17 of 20 (A8).
CLAIM_NUMBERS: dict[str, str] = {
    "A7": "RBN >= BN on all 20 settings (paper abstract: 'RBN improves the performance of BN consistently')",
    "A8": "RBN >= LN (or on par) on 17 of 20 settings; e.g. IWSLT14 35.6 BLEU, PTB 43.2 PPL, IMDB 84.5 %",
    "B1": "LN-simple >= LN on 6 of 8 datasets (better on 4, ties on 2), Table A",
    "B2": "LN-simple better than DetachNorm on 5 of 7 comparable datasets (En-De both diverge), Table B",
    "B5": "AdaNorm > LN on 7 of 8 datasets (tie on Enwiki8), Table C",
}


def rbn_paper(dataset: str) -> tuple[str, float] | None:
    return RBN_PAPER.get(dataset)


def ln_family_paper(dataset: str, norm: str) -> float | None:
    return LN_FAMILY_PAPER.get(dataset, {}).get(norm)
