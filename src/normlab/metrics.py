"""Task metrics computed the standard way (sacreBLEU, seqeval), plus perplexity and accuracy, and the
direction of every metric.  Torch-free: the training engine and the analysis both import it."""

from __future__ import annotations

import math


def bleu(hypotheses: list[str], references: list[str], tokenize: str = "13a") -> dict:
    """Corpus BLEU with sacreBLEU on detokenized text, with its signature."""
    import sacrebleu  # imported where used: seqeval and sacrebleu cost ~1 s per job at start-up

    metric = sacrebleu.metrics.BLEU(tokenize=tokenize)
    score = metric.corpus_score(hypotheses, [references])
    return {"bleu": score.score, "bleu_signature": str(metric.get_signature())}


def perplexity(nll_sum: float, n_tokens: int) -> float:
    """exp of the mean token negative log-likelihood (natural log); inf if it overflows."""
    mean = nll_sum / max(n_tokens, 1)
    return math.exp(mean) if mean < 700 else float("inf")


def entity_f1(true_tags: list[list[str]], pred_tags: list[list[str]]) -> float:
    """Entity-level F1, seqeval strict mode with the IOB2 scheme (CoNLL-style)."""
    from seqeval.metrics import f1_score  # pulls in scikit-learn: only the tagging jobs pay for it
    from seqeval.scheme import IOB2

    return float(f1_score(true_tags, pred_tags, mode="strict", scheme=IOB2))


# The direction of every metric the engine reports (final.json, metrics.jsonl); the analysis orients
# differences with it.  Keys are the metric names of `objectives.evaluate`.
HIGHER_IS_BETTER: dict[str, bool] = {"bleu": True, "accuracy": True, "f1": True, "ppl": False, "loss": False}


def higher_is_better(metric: str) -> bool:
    """True where a larger value of ``metric`` is better (BLEU, accuracy, F1), False for ppl and loss."""
    try:
        return HIGHER_IS_BETTER[metric]
    except KeyError:
        raise KeyError(
            f"no direction known for metric {metric!r}; add it to normlab.metrics.HIGHER_IS_BETTER "
            f"(known: {', '.join(HIGHER_IS_BETTER)})"
        ) from None
