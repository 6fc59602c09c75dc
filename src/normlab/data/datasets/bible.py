"""Translation default corpus: Bible verse pairs, Spanish Reina-Valera 1909 -> English KJV."""

from __future__ import annotations

from pathlib import Path

from .. import parsers as P
from ..build import Parsed
from ..sources import Artifact, DebianSource, ParseError, PublisherFile, PublisherSource
from ..spec import SPLIT_SEED, DatasetSpec, take
from ..text import holdout

_SWORD = "usr/share/sword"  # where Debian puts the SWORD library; the modules' zips hold its inside


def _module(package: str, version: str, module: str) -> Artifact:
    """Debian's package of an eBible.org SWORD module, or the module's zip from eBible.org's SWORD
    repository (the one CrossWire's installers list).  Debian rebuilds the module from its source,
    so the two differ in bytes; they are accepted as the same when their verse slots are."""
    data = f"modules/texts/ztext/{module}"
    ebible = PublisherFile(f"ebible:{module}.zip", f"https://ebible.org/sword/zip/{module}.zip", _SWORD, f"{data}/*")
    return Artifact(
        key=f"deb:{package}={version}",
        filename=f"{package}_{version}_all.deb",
        sources=(DebianSource(package, version), PublisherSource("eBible.org SWORD repository", (ebible,))),
        members=(f"{_SWORD}/{data}/*",),
        content=((f"{_SWORD}/{data}", "sword-ztext"),),
    )


KJV_DEB = _module("sword-text-kjv", "14.3-1", "engKJV2006eb")
SPARV_DEB = _module("sword-text-sparv", "2.60-1", "spaRV1909eb")


def bible_pairs(es_module: Path, en_module: Path) -> tuple[list[tuple[str, str]], dict]:
    """Zip two SWORD modules with the same (KJV) versification slot by slot; keep pairs where both
    sides have text after cleaning."""
    es, en = P.read_sword_ztext(es_module), P.read_sword_ztext(en_module)
    if len(es) != len(en):
        raise ParseError(
            es_module,
            None,
            f"{len(es)} verse slots but {en_module.name} has {len(en)}; "
            "the two modules do not share a versification",
        )
    pairs, one_sided = [], 0
    for a, b in zip(es, en, strict=True):
        a_text, b_text = P.clean_osis(a), P.clean_osis(b)
        if a_text and b_text:
            pairs.append((a_text, b_text))
        elif a_text or b_text:
            one_sided += 1
    return pairs, {"verse_slots": len(es), "verse_pairs": len(pairs), "one_sided_slots": one_sided}


def parse_bible(paths: dict[str, Path]) -> Parsed:
    base = f"{_SWORD}/modules/texts/ztext"
    pairs, counts = bible_pairs(
        paths[SPARV_DEB.key] / base / "spaRV1909eb", paths[KJV_DEB.key] / base / "engKJV2006eb"
    )
    rest, test = holdout(len(pairs), 1000, SPLIT_SEED)
    rest_pairs = take(pairs, rest)
    train_idx, valid_idx = holdout(len(rest_pairs), 1000, SPLIT_SEED + 1)
    return Parsed(
        splits={
            "train": take(rest_pairs, train_idx),
            "valid": take(rest_pairs, valid_idx),
            "test": take(pairs, test),
        },
        raw_counts=counts,
    )


BIBLE_ES_EN = DatasetSpec(
    "bible_es_en",
    "translation",
    "Bible verse pairs, Spanish RV1909 -> English KJV",
    (SPARV_DEB, KJV_DEB),
    parse_bible,
    license="public domain (both translations)",
    default=True,
    stands_for="IWSLT14 De-En",
    options={"bpe_vocab_size": 8000},
    splits=f"random verse hold-out: 1,000 test, then 1,000 valid "
    f"(seeds {SPLIT_SEED}, {SPLIT_SEED + 1}), "
    "rest train",
    preprocessing="SWORD zText parsed; OSIS notes/titles and tags removed; joint (shared) BPE, 8k, "
    "NFKC, Metaspace pre-tokenizer, cased; no length filter (lengths are in the offsets)",
    expected_splits={"train": 29_084, "valid": 1_000, "test": 1_000},
    expected_raw_counts={"verse_slots": 32_361, "verse_pairs": 31_084, "one_sided_slots": 18},
)
