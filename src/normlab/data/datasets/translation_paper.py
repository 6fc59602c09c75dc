"""The papers' translation datasets: IWSLT14 De-En and WMT16 En-De (canonical URLs)."""

from __future__ import annotations

from pathlib import Path

from .. import parsers as P
from ..build import Parsed
from ..spec import DatasetSpec, one, url_artifact

# ------------------------------------------------------------------------------- IWSLT14

IWSLT14_TGZ = url_artifact(
    "url:iwslt14-de-en",
    "iwslt14-de-en.tgz",
    "http://dl.fbaipublicfiles.com/fairseq/data/iwslt14/de-en.tgz",
    "https://wit3.fbk.eu/archive/2014-01/texts/de/en/de-en.tgz",
    members=("de-en/train.tags.de-en.*", "de-en/IWSLT14.*.xml"),
)
IWSLT14_TEST_SETS = (
    "IWSLT14.TED.dev2010",
    "IWSLT14.TEDX.dev2012",
    "IWSLT14.TED.tst2010",
    "IWSLT14.TED.tst2011",
    "IWSLT14.TED.tst2012",
)


def parse_iwslt14(paths: dict[str, Path]) -> Parsed:
    """fairseq's prepare-iwslt14.sh split: valid = every 23rd training line, test = dev2010 +
    TEDX dev2012 + tst2010-2012.  Lowercased like that recipe; pairs longer than 175 words dropped."""
    root = paths[IWSLT14_TGZ.key] / "de-en"
    de, en = root / "train.tags.de-en.de", root / "train.tags.de-en.en"
    train = P.zip_segments(de, P.read_iwslt_train_tags(de), en, P.read_iwslt_train_tags(en))
    test = []
    for name in IWSLT14_TEST_SETS:
        s, t = root / f"{name}.de-en.de.xml", root / f"{name}.de-en.en.xml"
        test += P.zip_segments(s, P.read_seg_file(s), t, P.read_seg_file(t))

    def clean(pairs):
        pairs = [(a.lower(), b.lower()) for a, b in pairs if a and b]
        return [p for p in pairs if len(p[0].split()) <= 175 and len(p[1].split()) <= 175]

    train = clean(train)
    return Parsed(
        splits={
            "train": [p for i, p in enumerate(train, 1) if i % 23],
            "valid": [p for i, p in enumerate(train, 1) if i % 23 == 0],
            "test": clean(test),
        },
        raw_counts={"train_and_valid_pairs": len(train)},
    )


IWSLT14_DE_EN = DatasetSpec(
    "iwslt14_de_en",
    "translation",
    "IWSLT14 German -> English (TED)",
    (IWSLT14_TGZ,),
    parse_iwslt14,
    license="TED talks, CC BY-NC-ND",
    stands_for="IWSLT14 De-En (both papers)",
    options={"bpe_vocab_size": 10000},
    splits="fairseq prepare-iwslt14.sh: valid = every 23rd training pair; "
    "test = dev2010 + TEDX dev2012 + tst2010-2012",
    preprocessing="lowercased, pairs > 175 words dropped, joint BPE 10k with HF tokenizers "
    "(not Moses + subword-nmt: differs slightly from fairseq)",
)

# ------------------------------------------------------------------------------- WMT16

WMT16_ARTIFACTS = (
    url_artifact(
        "url:wmt13-europarl-v7",
        "training-parallel-europarl-v7.tgz",
        "http://www.statmt.org/wmt13/training-parallel-europarl-v7.tgz",
        members=("*europarl-v7.de-en.*",),
    ),
    url_artifact(
        "url:wmt13-commoncrawl",
        "training-parallel-commoncrawl.tgz",
        "http://www.statmt.org/wmt13/training-parallel-commoncrawl.tgz",
        members=("*commoncrawl.de-en.*",),
    ),
    url_artifact(
        "url:wmt16-nc-v11",
        "training-parallel-nc-v11.tgz",
        "http://data.statmt.org/wmt16/translation-task/training-parallel-nc-v11.tgz",
        members=("*news-commentary-v11.de-en.*",),
    ),
    url_artifact(
        "url:wmt16-dev",
        "wmt16-dev.tgz",
        "http://data.statmt.org/wmt16/translation-task/dev.tgz",
        members=("*newstest2013.*", "*newstest2014-deen-*.sgm"),
    ),
)


def parse_wmt16(paths: dict[str, Path]) -> Parsed:
    """En->De.  train: Europarl v7 + CommonCrawl + News Commentary v11; valid: newstest2013;
    test: newstest2014 (the `wmt16_en_de` convention).  Empty lines on either side dropped."""
    train = []
    for art, stem in zip(
        WMT16_ARTIFACTS[:3], ("europarl-v7", "commoncrawl", "news-commentary-v11"), strict=True
    ):
        root = paths[art.key]
        train += P.read_parallel_lines(one(root, f"**/{stem}.de-en.en"), one(root, f"**/{stem}.de-en.de"))
    dev = paths[WMT16_ARTIFACTS[3].key]
    valid = P.read_parallel_lines(one(dev, "**/newstest2013.en"), one(dev, "**/newstest2013.de"))
    s, t = one(dev, "**/newstest2014-deen-src.en.sgm"), one(dev, "**/newstest2014-deen-ref.de.sgm")
    test = P.zip_segments(s, P.read_seg_file(s), t, P.read_seg_file(t))

    def keep(pairs):
        return [p for p in pairs if p[0] and p[1]]

    return Parsed(splits={"train": keep(train), "valid": keep(valid), "test": keep(test)})


WMT16_EN_DE = DatasetSpec(
    "wmt16_en_de",
    "translation",
    "WMT16 English -> German",
    WMT16_ARTIFACTS,
    parse_wmt16,
    license="per corpus (Europarl, CommonCrawl, News Commentary): research use",
    stands_for="WMT16 En-De",
    options={"bpe_vocab_size": 32000},
    splits="train Europarl v7 + CommonCrawl + NC v11; valid newstest2013; test newstest2014",
    preprocessing="cased; joint BPE 32k",
)
