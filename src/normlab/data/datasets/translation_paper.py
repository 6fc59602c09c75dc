"""The papers' translation datasets: IWSLT14 De-En and WMT16 En-De (canonical URLs), prepared as the
authors' data was (fairseq's recipes, step by step: ``normlab.data.mt``; docs/data.md)."""

from __future__ import annotations

from pathlib import Path

from .. import mt
from ..build import Parsed
from ..errors import ParseError
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


# The recipe of fairseq's examples/translation/prepare-iwslt14.sh (the data of both papers' IWSLT runs),
# read by parse_iwslt14 (text steps) and by build_translation (BPE, dictionary); see docs/data.md.
IWSLT14_OPTIONS = {
    "text": mt.PIPELINE,
    "source_lang": "de",
    "target_lang": "en",
    "lowercase": True,  # lowercase.perl after clean-corpus (train) / after tokenizing (valid, test)
    "clean": {"ratio": 1.5, "min_len": 1, "max_len": 175},  # clean-corpus-n.perl -ratio 1.5 ... 1 175
    "valid_every": 23,  # awk 'NR%23 == 0' on the cleaned training text
    "bpe_merges": 10000,  # learn_bpe.py -s 10000 on cat train.de train.en
    "bpe_learn_order": ["source", "target"],
    "nwords": None,  # fairseq-preprocess --joined-dictionary, every token kept
    "compound_split": False,
    "source_eos": True,  # fairseq's binarised source ends in </s>
}


def _check_parallel(a_path: Path, a: list, b_path: Path, b: list) -> None:
    if len(a) != len(b):
        raise ParseError(b_path, None, f"{len(b)} lines, but {a_path.name} has {len(a)} (the sides must align)")


def parse_iwslt14(paths: dict[str, Path]) -> Parsed:
    """prepare-iwslt14.sh, step by step: train = ``train.tags.de-en.*`` minus its meta lines
    (:func:`mt.iwslt_train_lines`), Moses-tokenised per language, clean-corpus-n (ratio 1.5, 1-175
    tokens), lowercased; valid = every 23rd line of that, train = the rest; test = dev2010 + TEDX
    dev2012 + tst2010-2012 (:func:`mt.seg_lines`), tokenised and lowercased, not length-cleaned.
    Returns the tokenised text pairs and, for valid/test, the untokenised targets (sacreBLEU)."""
    o = IWSLT14_OPTIONS
    src, tgt = o["source_lang"], o["target_lang"]
    root = paths[IWSLT14_TGZ.key] / "de-en"
    files = {lang: root / f"train.tags.de-en.{lang}" for lang in (src, tgt)}
    raw = {lang: mt.iwslt_train_lines(path) for lang, path in files.items()}
    _check_parallel(files[src], raw[src], files[tgt], raw[tgt])
    workers = mt.default_workers()
    tok = {lang: mt.moses_tokenize(raw[lang], lang, workers=workers) for lang in (src, tgt)}
    kept, s_clean, t_clean = mt.clean_corpus(tok[src], tok[tgt], **o["clean"])
    train_pairs = list(zip(mt.lowercase(s_clean), mt.lowercase(t_clean), strict=True))
    train_refs = [raw[tgt][i] for i in kept]
    every = o["valid_every"]

    test, test_refs = [], []
    for name in IWSLT14_TEST_SETS:
        s_path, t_path = root / f"{name}.de-en.{src}.xml", root / f"{name}.de-en.{tgt}.xml"
        s_lines, t_lines = mt.seg_lines(s_path), mt.seg_lines(t_path)
        _check_parallel(s_path, s_lines, t_path, t_lines)
        test += zip(*(mt.lowercase(mt.moses_tokenize(x, lang)) for x, lang in ((s_lines, src), (t_lines, tgt))),
                    strict=True)
        test_refs += t_lines
    valid_idx = [i for i in range(len(train_pairs)) if (i + 1) % every == 0]
    train_idx = [i for i in range(len(train_pairs)) if (i + 1) % every]
    return Parsed(
        splits={
            "train": [train_pairs[i] for i in train_idx],
            "valid": [train_pairs[i] for i in valid_idx],
            "test": test,
        },
        raw_counts={"train_tags_lines": len(raw[src]), "after_clean_corpus": len(train_pairs)},
        references={"valid": [mt.normalize_reference(train_refs[i]) for i in valid_idx],
                    "test": [mt.normalize_reference(r) for r in test_refs]},
    )


IWSLT14_DE_EN = DatasetSpec(
    "iwslt14_de_en",
    "translation",
    "IWSLT14 German -> English (TED)",
    (IWSLT14_TGZ,),
    parse_iwslt14,
    license="TED talks, CC BY-NC-ND",
    stands_for="IWSLT14 De-En (both papers)",
    options=IWSLT14_OPTIONS,
    splits="fairseq prepare-iwslt14.sh: valid = every 23rd cleaned training pair; "
    "test = dev2010 + TEDX dev2012 + tst2010-2012 (fairseq's logs: 160,239 / 7,283 / 6,750 pairs)",
    preprocessing="as fairseq prepare-iwslt14.sh: Moses tokenizer (sacremoses, -l de / -l en), "
    "clean-corpus-n ratio 1.5 and 1-175 tokens on train, lowercased, joint subword-nmt BPE 10k merges, "
    "fairseq joined dictionary; source sentences end in EOS",
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


# The recipe of the data of fairseq's WMT16 En-De example (examples/scaling_nmt: "the preprocessed WMT'16
# En-De data provided by Google", made by tensorflow/nmt's nmt/scripts/wmt16_en_de.sh), then fairseq-preprocess
# --nwordssrc 32768 --nwordstgt 32768 --joined-dictionary; scored with scripts/compound_split_bleu.sh.
WMT16_OPTIONS = {
    "text": mt.PIPELINE,
    "source_lang": "en",
    "target_lang": "de",
    "lowercase": False,
    "clean": {"ratio": 9.0, "min_len": 1, "max_len": 80},  # clean-corpus-n.perl (default ratio) ... 1 80
    "bpe_merges": 32000,  # learn_bpe.py -s 32000 on cat train.tok.clean.de train.tok.clean.en
    "bpe_learn_order": ["target", "source"],
    "nwords": 32768,
    "compound_split": True,  # tokenised BLEU after compound_split_bleu.sh's ##AT##-##AT## split
    "source_eos": True,
}
WMT16_TRAIN = ("europarl-v7", "commoncrawl", "news-commentary-v11")


def parse_wmt16(paths: dict[str, Path]) -> Parsed:
    """En->De as wmt16_en_de.sh makes it: train = Europarl v7 + CommonCrawl + News Commentary v11
    concatenated, Moses-tokenised per language, clean-corpus-n 1-80 tokens (its default ratio 9);
    valid = newstest2013, test = newstest2014 (input-from-sgm.perl of ``newstest2014-deen-src.de.sgm``
    and ``-ref.en.sgm``), tokenised, not cleaned; cased.  Returns the tokenised text pairs and, for
    valid/test, the untokenised targets (sacreBLEU)."""
    o = WMT16_OPTIONS
    src, tgt = o["source_lang"], o["target_lang"]
    raw = {src: [], tgt: []}
    for art, stem in zip(WMT16_ARTIFACTS[:3], WMT16_TRAIN, strict=True):
        files = {lang: one(paths[art.key], f"**/{stem}.de-en.{lang}") for lang in (src, tgt)}
        lines = {lang: mt.read_lines(path) for lang, path in files.items()}
        _check_parallel(files[src], lines[src], files[tgt], lines[tgt])
        for lang in (src, tgt):
            raw[lang] += lines[lang]
    workers = mt.default_workers()
    tok = {lang: mt.moses_tokenize(raw[lang], lang, workers=workers) for lang in (src, tgt)}
    _, t_clean, s_clean = mt.clean_corpus(tok[tgt], tok[src], **o["clean"])  # the script's `... de en ...`
    dev = paths[WMT16_ARTIFACTS[3].key]
    held_out, refs = {}, {}
    for split, files in (
        ("valid", {src: one(dev, "**/newstest2013.en"), tgt: one(dev, "**/newstest2013.de")}),
        ("test", {src: one(dev, "**/newstest2014-deen-ref.en.sgm"), tgt: one(dev, "**/newstest2014-deen-src.de.sgm")}),
    ):
        lines = {lang: (mt.sgm_lines if path.suffix == ".sgm" else mt.read_lines)(path) for lang, path in files.items()}
        _check_parallel(files[src], lines[src], files[tgt], lines[tgt])
        held_out[split] = list(zip(mt.moses_tokenize(lines[src], src), mt.moses_tokenize(lines[tgt], tgt), strict=True))
        refs[split] = [mt.normalize_reference(r) for r in lines[tgt]]
    return Parsed(
        splits={"train": list(zip(s_clean, t_clean, strict=True)), **held_out},
        raw_counts={"train_lines": len(raw[src]), "after_clean_corpus": len(s_clean)},
        references=refs,
    )


WMT16_EN_DE = DatasetSpec(
    "wmt16_en_de",
    "translation",
    "WMT16 English -> German",
    WMT16_ARTIFACTS,
    parse_wmt16,
    license="per corpus (Europarl, CommonCrawl, News Commentary): research use",
    stands_for="WMT16 En-De",
    options=WMT16_OPTIONS,
    splits="train Europarl v7 + CommonCrawl + NC v11 (clean-corpus-n 1-80 tokens); valid newstest2013; "
    "test newstest2014 (the data of fairseq's WMT16 En-De example)",
    preprocessing="as tensorflow/nmt wmt16_en_de.sh (fairseq's WMT16 data): Moses tokenizer (sacremoses), "
    "cased, joint subword-nmt BPE 32k merges; fairseq joined dictionary of 32,768 entries; "
    "source sentences end in EOS; tokenised BLEU with compound splitting",
)
