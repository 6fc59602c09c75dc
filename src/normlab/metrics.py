"""Task metrics computed the standard way (sacreBLEU, seqeval) and the papers' way (tokenised BLEU as
fairseq-generate reports it), plus perplexity, and their directions.

Torch-free: the training engine scores runs with these and the analysis orients differences with
:data:`HIGHER_IS_BETTER`.
"""

from __future__ import annotations

import math
import re


def bleu(hypotheses: list[str], references: list[str], tokenize: str = "13a", lowercase: bool = False) -> dict:
    """Corpus BLEU with sacreBLEU on detokenized text, with its signature (``lowercase``: both sides
    lowercased, for data the model only ever saw lowercased; the signature then says ``case:lc``)."""
    import sacrebleu  # imported where used: seqeval and sacrebleu cost ~1 s per job at start-up

    metric = sacrebleu.metrics.BLEU(tokenize=tokenize, lowercase=lowercase)
    score = metric.corpus_score(hypotheses, [references])
    return {"bleu": score.score, "bleu_signature": str(metric.get_signature())}


_EMPTY = "</s>"  # what an empty sentence counts as in fairseq's scorer (see tokenized_bleu)


def tokenized_bleu(hypotheses: list[str], references: list[str]) -> float:
    """Corpus BLEU-4 of already tokenised text, as fairseq-generate ``--remove-bpe`` (fairseq's
    ``bleu`` scorer), fairseq-score and multi-bleu.perl compute it: words are the whitespace-separated
    tokens, clipped n-gram precisions for n = 1..4 without smoothing (0 if any is 0), brevity penalty
    ``exp(1 - ref_len / hyp_len)`` when the hypotheses are shorter, one reference, case-sensitive.

    Computed by sacreBLEU with ``tokenize="none", smooth_method="none"``, which is that formula.  One
    quirk of fairseq's scorer is kept: it trims the EOS of every sentence unless the sentence is empty,
    so an empty hypothesis or reference counts as one token (EOS), which matches another empty one."""
    import sacrebleu

    metric = sacrebleu.metrics.BLEU(tokenize="none", smooth_method="none", force=True)
    hyps = [h if h.split() else _EMPTY for h in hypotheses]
    refs = [r if r.split() else _EMPTY for r in references]
    return metric.corpus_score(hyps, [refs]).score


_COMPOUND = re.compile(r"(\S)-(\S)")


def compound_split(text: str) -> str:
    """fairseq's scripts/compound_split_bleu.sh (from tensor2tensor's get_ende_bleu.sh): every hyphen
    between two non-spaces becomes `` ##AT##-##AT## `` (non-overlapping, left to right, as Perl's
    ``s{(\\S)-(\\S)}{$1 ##AT##-##AT## $2}g``: in ``a-b-c`` only the first hyphen is split)."""
    return _COMPOUND.sub(r"\1 ##AT##-##AT## \2", text)


def perplexity(nll_sum: float, n_tokens: int) -> float:
    """exp of the mean token negative log-likelihood (natural log); inf if it overflows."""
    mean = nll_sum / max(n_tokens, 1)
    return math.exp(mean) if mean < 700 else float("inf")


def entity_f1(true_tags: list[list[str]], pred_tags: list[list[str]], scheme: str = "iob2") -> float:
    """Entity-level F1, seqeval strict mode in the tags' scheme: ``iob2`` (CoNLL-style) or ``bioes``
    (seqeval's IOBES)."""
    from seqeval.metrics import f1_score  # pulls in scikit-learn: only the tagging jobs pay for it
    from seqeval.scheme import IOB2, IOBES

    schemes = {"iob2": IOB2, "bioes": IOBES}
    if scheme not in schemes:
        raise ValueError(f"entity F1 scores the schemes {', '.join(schemes)}; got {scheme!r}")
    return float(f1_score(true_tags, pred_tags, mode="strict", scheme=schemes[scheme]))


# The direction of every metric the engine reports (final.json, metrics.jsonl); the analysis orients
# differences with it.  Keys are the metric names of `normlab.train.objectives.evaluate`.
HIGHER_IS_BETTER: dict[str, bool] = {
    "bleu": True,  # sacreBLEU on detokenised text (the standard; its signature beside it)
    "bleu_tok": True,  # tokenised BLEU as fairseq-generate reports it (the papers' numbers)
    "accuracy": True,
    "f1": True,
    "ppl": False,
    "loss": False,
}


def higher_is_better(metric: str) -> bool:
    """True where a larger value of ``metric`` is better (BLEU, accuracy, F1), False for ppl and loss."""
    try:
        return HIGHER_IS_BETTER[metric]
    except KeyError:
        raise KeyError(
            f"no direction known for metric {metric!r}; add it to normlab.metrics.HIGHER_IS_BETTER "
            f"(known: {', '.join(HIGHER_IS_BETTER)})"
        ) from None
