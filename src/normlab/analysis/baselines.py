"""``normlab baselines``: the trivial baseline of every setting, computed from the data its runs evaluate.

    normlab baselines --settings SETTINGS --cache data_cache --out results/tidy/baselines.csv

``SETTINGS`` is a JSON list (inline or a file), one object per setting: ``dataset`` (the setting's
name: a dataset or a sweep point), ``corpus`` (the prepared dataset), ``family``, ``data_options``
(the run's ``data.options``: ``max_eval_examples``, ``max_len``, ``length_range``, ...) and
``bleu_tokenize``; the workflow writes it (``normlab.workflow.baseline_settings``).  The test examples
are selected exactly as the engine selects them (:mod:`normlab.data.selection`); numpy only.

Per family, on the test split (the learning bar of a setting uses the one in its primary metric):

=============== ============== ======================================================================
family          baseline       what it predicts
=============== ============== ======================================================================
classification  majority       the most frequent training label, for every example (accuracy)
image           majority       the same, for every image
tagging         majority       the most frequent training tag, for every token (accuracy); and, for
                all_o          IOB2 tag sets, everything ``O`` (entity F1 with seqeval: 0)
lm              unigram        add-one-smoothed unigram frequencies of the training targets
                               (perplexity over the test targets, ``<eos>`` included)
translation     copy_source    the source sentence as the translation (sacreBLEU, the run's tokenizer)
=============== ============== ======================================================================
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from normlab.data.selection import STORED_EOS, selected

from .contract import BASELINE_COLUMNS
from .tidy import write_csv

IOB2_NAME = re.compile(r"^(O|[BI]-.+)$")


def _majority(train_labels: np.ndarray, test_labels: np.ndarray) -> tuple[float, int]:
    values, counts = np.unique(train_labels, return_counts=True)
    top = values[np.argmax(counts)]
    return float(np.mean(test_labels == top)), len(test_labels)


def _flat(seqs, index: np.ndarray, drop_last: bool = False, max_len: int | None = None):
    """The tokens of sequences ``index`` of a ``TokenSequences``, concatenated (one gather), and each
    one's length; ``drop_last`` drops every sequence's last token, ``max_len`` keeps its first tokens."""
    starts = np.asarray(seqs.offsets)[index]
    lengths = np.asarray(seqs.offsets)[index + 1] - starts - (1 if drop_last else 0)
    if max_len:
        lengths = np.minimum(lengths, max_len)
    shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return np.asarray(seqs.ids)[shift + np.arange(int(lengths.sum()))].astype(np.int64), lengths


def _majority_label(train, test, tr, te, options, bleu_tokenize) -> list[dict]:
    value, n = _majority(np.asarray(train.labels)[tr], np.asarray(test.labels)[te])
    return [dict(metric="accuracy", baseline="majority", value=value, n_examples=len(te), n_targets=n)]


def _majority_tag(train, test, tr, te, options, bleu_tokenize) -> list[dict]:
    """The most frequent tag (accuracy); and, for IOB2 tag sets, everything ``O`` (entity F1)."""
    max_len = options.get("max_len")
    train_tags, _ = _flat(train.tags, tr, max_len=max_len)
    test_tags, lengths = _flat(test.tags, te, max_len=max_len)
    value, n = _majority(train_tags, test_tags)
    rows = [dict(metric="accuracy", baseline="majority", value=value, n_examples=len(te), n_targets=n)]
    names = np.asarray(train.label_names, dtype=object)
    if len(names) and all(IOB2_NAME.match(t) for t in names):
        from normlab.metrics import entity_f1  # seqeval, only for IOB2 tag sets

        truth = [list(seq) for seq in np.split(names[test_tags], np.cumsum(lengths)[:-1])]
        f1 = entity_f1(truth, [["O"] * len(seq) for seq in truth])
        rows.append(dict(metric="f1", baseline="all_o", value=f1, n_examples=len(te), n_targets=n))
    return rows


def _unigram(train, test, tr, te, options, bleu_tokenize) -> list[dict]:
    """Per sentence or as a stream: every token and each sentence's <eos>, as the engine's targets
    (each sentence without its stored <eos>, cut to max_len, then <eos>)."""
    max_len, eos = options.get("max_len"), train.eos_id
    train_ids, _ = _flat(train.tokens, tr, drop_last=True, max_len=max_len)
    counts = np.bincount(train_ids, minlength=train.vocab_size).astype(np.float64)
    counts[eos] += len(tr)
    logp = np.log((counts + 1) / (counts.sum() + train.vocab_size))  # add-one smoothing
    test_ids, _ = _flat(test.tokens, te, drop_last=True, max_len=max_len)
    n = len(test_ids) + len(te)
    nll = -float(logp[test_ids].sum() + len(te) * logp[eos])
    return [dict(metric="ppl", baseline="unigram", value=math.exp(nll / n), n_examples=len(te), n_targets=n)]


def _copy_source(train, test, tr, te, options, bleu_tokenize) -> list[dict]:
    return _copy_source_bleu(test, te, bleu_tokenize)


# the trivial baseline(s) of each data family (the module docstring's table)
BASELINES = {
    "classification": _majority_label,
    "image": _majority_label,
    "tagging": _majority_tag,
    **{family: _unigram for family in STORED_EOS},
    "translation": _copy_source,
}


def baseline_rows(splits: dict, family: str, options: dict, bleu_tokenize: str = "13a") -> list[dict]:
    """The baselines of one setting from its ``train`` and ``test`` splits (``DatasetSplit`` objects)."""
    if family not in BASELINES:
        raise ValueError(f"no trivial baseline for family {family!r}")
    train, test = splits["train"], splits["test"]
    tr, te = selected(train, "train", options), selected(test, "test", options)
    if len(te) == 0 or len(tr) == 0:
        raise ValueError(f"no train or test examples left with data options {options}")
    return BASELINES[family](train, test, tr, te, options, bleu_tokenize)


def _copy_source_bleu(test, te: np.ndarray, bleu_tokenize: str) -> list[dict]:
    """Copying the source as the translation, scored as the engine scores its hypotheses: sacreBLEU
    of the plain text against the untokenised references where the data keeps them (``bleu``), and
    tokenised BLEU (``bleu_tok``: Moses data with BPE removed, after compound splitting where the
    data asks for it; other data: sacreBLEU's 13a tokenisation of the plain text)."""
    from normlab import metrics

    text = test.target_text()  # Moses + subword-nmt data; None: the tokenizer's own decoding
    options = test.meta.get("text", {}) if text is not None else {}
    hyps = [test.decode(test.tokens[i]) for i in te]
    refs = [test.reference(i) if test.references is not None else test.decode(test.target[i]) for i in te]
    if text is not None:
        tok_hyps = [text.tokenized(test.tokens[i], escape_unk=False) for i in te]
        tok_refs = [text.tokenized(test.target[i], escape_unk=True) for i in te]
    else:
        from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

        tok13a = Tokenizer13a()
        tok_hyps, tok_refs = [tok13a(h) for h in hyps], [tok13a(r) for r in refs]
    if options.get("compound_split"):
        tok_hyps = [metrics.compound_split(h) for h in tok_hyps]
        tok_refs = [metrics.compound_split(r) for r in tok_refs]
    n = dict(n_examples=len(te), n_targets=sum(len(test.target[i]) for i in te))
    sacre = metrics.bleu(hyps, refs, bleu_tokenize, lowercase=bool(options.get("lowercase")))["bleu"]
    return [dict(metric="bleu", baseline="copy_source", value=float(sacre), **n),
            dict(metric="bleu_tok", baseline="copy_source_tok", value=float(metrics.tokenized_bleu(tok_hyps, tok_refs)),
                 **n)]


def compute(settings: list[dict], cache: str | Path | None) -> pd.DataFrame:
    """Every setting's baselines; a corpus is loaded once."""
    from normlab import data

    loaded: dict[str, dict] = {}
    rows = []
    for spec in settings:
        corpus = spec["corpus"]
        if corpus not in loaded:
            try:
                loaded[corpus] = {s: data.load(corpus, s, cache) for s in ("train", "test")}
            except FileNotFoundError as err:
                raise SystemExit(f"normlab baselines: {corpus} is not prepared ({err}); run `normlab prepare "
                                 f"{corpus}`") from None
            except KeyError as err:
                raise SystemExit(f"normlab baselines: {err.args[0]}") from None
        options = {k: v for k, v in (spec.get("data_options") or {}).items() if k != "cache"}
        for row in baseline_rows(loaded[corpus], spec["family"], options, spec.get("bleu_tokenize", "13a")):
            rows.append(dict(dataset=spec["dataset"], corpus=corpus, task=spec["family"], split="test",
                             selection=json.dumps(options, sort_keys=True), **row))
    return pd.DataFrame(rows, columns=BASELINE_COLUMNS)


def read_settings(value: str) -> list[dict]:
    text = value.strip()
    if not text.startswith("["):
        path = Path(text)
        if not path.is_file():
            raise SystemExit(f"normlab baselines: --settings {text}: neither a JSON list nor a file")
        text = path.read_text()
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as err:
        raise SystemExit(f"normlab baselines: --settings is not valid JSON ({err})") from None
    missing = [i for i, s in enumerate(settings) if not {"dataset", "corpus", "family"} <= set(s)]
    if missing:
        raise SystemExit(f"normlab baselines: setting(s) {missing} lack dataset, corpus or family")
    return settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", required=True,
                        help="JSON list of {dataset, corpus, family, data_options, bleu_tokenize}, or a file")
    parser.add_argument("--cache", default=None, help="the data cache (default as normlab.data)")
    parser.add_argument("--out", required=True, type=Path, help="results/tidy/baselines.csv")


def run(args: argparse.Namespace) -> int:
    table = compute(read_settings(args.settings), args.cache)
    write_csv(table, args.out)
    for r in table.itertuples():
        print(f"{r.dataset}: {r.baseline} {r.metric} = {r.value:.4g} ({r.n_examples} test examples)")
    return 0
