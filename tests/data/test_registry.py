"""The registry's declarations, and each dataset's parse function on a tiny copy of its real layout."""

from __future__ import annotations

import numpy as np
import pytest
from datafmt import write_cifar_bin, write_fashion_layout, write_sword_module

from normlab.data import registry as R
from normlab.data.sources import ParseError

FAMILIES = {"image", "translation", "lm", "tagging", "classification"}


def test_every_dataset_is_declared_completely():
    assert set(R.DEFAULT_DATASETS) == {
        "fashion_mnist",
        "bible_es_en",
        "brown_lm",
        "brown_pos",
        "wnut16",
        "spamassassin",
        "rt_polarity",
    }
    for name, spec in R.DATASETS.items():
        assert spec.name == name and spec.family in FAMILIES
        assert spec.artifacts and all(a.sources for a in spec.artifacts)
        assert spec.license and spec.splits and spec.preprocessing and spec.stands_for
    paper = {
        "iwslt14_de_en",
        "wmt16_en_de",
        "ptb",
        "wikitext103",
        "conll2003",
        "resume",
        "imdb",
        "yelp_polarity",
        "dbpedia",
        "cifar10",
    }
    assert paper <= set(R.DATASETS)
    with pytest.raises(KeyError, match="unknown dataset 'nope'; known: fashion_mnist"):
        R.get("nope")


@pytest.mark.parametrize(
    "tag, universal",
    [
        ("nn-tl", "NOUN"),
        ("np$", "NOUN"),
        ("ppss+md", "PRON"),
        ("md*", "VERB"),
        ("*", "ADV"),
        ("---hl", "."),
        ("fw-in+at-tl", "X"),
        ("pp$$", "PRON"),
        ("ex", "DET"),
        ("od", "ADJ"),
        ("to", "PRT"),
        ("''", "."),
        ("cd-tl-hl", "NUM"),
        ("ppss+ber-n", "PRON"),
        ("*-hl", "ADV"),
        ("wdt+ber+pp", "DET"),
    ],
)
def test_brown_universal_mapping(tag, universal):
    assert R.brown_universal(tag) == universal


def test_brown_unknown_tag_is_reported_with_file(tmp_path):
    pkg = tmp_path / "package"
    pkg.mkdir()
    (pkg / "ca01").write_text("\tThe/at dog/zz\n")
    with pytest.raises(ParseError, match=r"ca01: sentence 1: Brown tag 'zz' has no universal mapping"):
        R.parse_brown_pos({R.BROWN_NPM.key: tmp_path})


def test_ptb_style_numbers():
    assert [R.ptb_style(w) for w in ("The", "1,000", "3.5", "1960's", "'60s", "B-52")] == [
        "the",
        "N",
        "N",
        "N",
        "'60s",
        "b-52",
    ]


def test_fashion_mnist_layout(tmp_path):
    write_fashion_layout(tmp_path / "usr/share/datasets/fashion-mnist")
    parsed = R.parse_fashion_mnist({R.FASHION_DEB.key: tmp_path})
    assert [len(parsed.splits[s][1]) for s in ("train", "valid", "test")] == [1000, 5000, 50]
    assert parsed.raw_counts == {"train_images": 6000, "test_images": 50}


def test_bible_pairs_zip_slots_and_drop_one_sided(tmp_path):
    base = tmp_path / "usr/share/sword/modules/texts/ztext"
    write_sword_module(
        base / "spaRV1909eb", {"ot": ["", "EN el principio", "solo", ""], "nt": ["Jesús lloró."]}
    )
    write_sword_module(base / "engKJV2006eb", {"ot": ["", "In the beginning", "", ""], "nt": ["Jesus wept."]})
    pairs, counts = R.bible_pairs(base / "spaRV1909eb", base / "engKJV2006eb")
    assert pairs == [("EN el principio", "In the beginning"), ("Jesús lloró.", "Jesus wept.")]
    assert counts == {"verse_slots": 5, "verse_pairs": 2, "one_sided_slots": 1}
    write_sword_module(base / "engKJV2006eb", {"ot": ["", "In the beginning"], "nt": ["Jesus wept."]})
    with pytest.raises(ParseError, match="do not share a versification"):
        R.bible_pairs(base / "spaRV1909eb", base / "engKJV2006eb")


def test_iwslt14_layout_and_fairseq_split(tmp_path):
    root = tmp_path / "de-en"
    root.mkdir()
    meta = "<url>http://ted.com/x</url>\n<talkid>7</talkid>\n"
    (root / "train.tags.de-en.de").write_text(meta + "".join(f"Satz {i}\n" for i in range(46)))
    (root / "train.tags.de-en.en").write_text(meta + "".join(f"Sentence {i}\n" for i in range(46)))
    for name in R.IWSLT14_TEST_SETS:
        for lang, word in (("de", "Hallo"), ("en", "Hello")):
            (root / f"{name}.de-en.{lang}.xml").write_text(
                f'<doc>\n<seg id="1"> {word} {name} </seg>\n</doc>\n'
            )
    parsed = R.parse_iwslt14({R.IWSLT14.key: tmp_path})
    assert len(parsed.splits["train"]) == 44 and parsed.splits["valid"] == [
        ("satz 22", "sentence 22"),
        ("satz 45", "sentence 45"),
    ]
    assert len(parsed.splits["test"]) == 5 and parsed.splits["test"][0] == (
        "hallo iwslt14.ted.dev2010",
        "hello iwslt14.ted.dev2010",
    )


def test_wmt16_layout(tmp_path):
    paths = {}
    for art, stem in zip(
        R.WMT16_ARTIFACTS[:3], ("europarl-v7", "commoncrawl", "news-commentary-v11"), strict=True
    ):
        d = tmp_path / art.key.replace(":", "_") / "training"
        d.mkdir(parents=True)
        (d / f"{stem}.de-en.en").write_text(f"{stem} one\n\n")
        (d / f"{stem}.de-en.de").write_text(f"{stem} eins\nnur deutsch\n")
        paths[art.key] = d.parent
    dev = tmp_path / "dev" / "dev"
    dev.mkdir(parents=True)
    (dev / "newstest2013.en").write_text("valid\n")
    (dev / "newstest2013.de").write_text("gültig\n")
    (dev / "newstest2014-deen-src.en.sgm").write_text('<srcset>\n<seg id="1">Test &quot;x&quot;</seg>\n')
    (dev / "newstest2014-deen-ref.de.sgm").write_text('<refset>\n<seg id="1">Prüfung</seg>\n')
    paths[R.WMT16_ARTIFACTS[3].key] = dev.parent
    parsed = R.parse_wmt16(paths)
    assert parsed.splits["train"] == [
        ("europarl-v7 one", "europarl-v7 eins"),
        ("commoncrawl one", "commoncrawl eins"),
        ("news-commentary-v11 one", "news-commentary-v11 eins"),
    ]
    assert parsed.splits["valid"] == [("valid", "gültig")] and parsed.splits["test"] == [
        ('Test "x"', "Prüfung")
    ]


def test_ptb_and_wikitext_layouts(tmp_path):
    paths = {}
    for art, split in zip(R.PTB_ARTIFACTS, ("train", "valid", "test"), strict=True):
        paths[art.key] = tmp_path / f"ptb.{split}.txt"
        paths[art.key].write_text(f" the {split} <unk> N \n")
    assert R.parse_ptb(paths).splits["valid"] == [["the", "valid", "<unk>", "N"]]
    wt = tmp_path / "wt" / "wikitext-103"
    wt.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        (wt / f"wiki.{split}.tokens").write_text(f" \n = Valkyria = \n \n Senjō no {split} @-@ 3 \n")
    parsed = R.parse_wikitext103({R.WIKITEXT103.key: wt.parent})
    assert parsed.splits["test"] == [["=", "Valkyria", "="], ["Senjō", "no", "test", "@-@", "3"]]


def test_conll2003_and_resume_layouts(tmp_path):
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.txt").write_text(
            "-DOCSTART- -X- -X- O\n\nPeter NNP B-NP I-PER\nBlackburn NNP I-NP I-PER\nsaid VBD B-VP O\n\n"
        )
    parsed = R.parse_conll2003({R.CONLL2003.key: tmp_path})
    assert parsed.splits["test"] == [(["Peter", "Blackburn", "said"], ["B-PER", "I-PER", "O"])]
    paths = {}
    for art in R.RESUME_ARTIFACTS:
        paths[art.key] = tmp_path / art.filename
        paths[art.key].write_text("高 B-NAME\n勇 E-NAME\n， O\n男 S-GENDER\n\n")
    parsed = R.parse_resume(paths)
    assert parsed.splits["valid"] == [(["高", "勇", "，", "男"], ["B-NAME", "I-NAME", "O", "B-GENDER"])]


def test_imdb_yelp_dbpedia_layouts(tmp_path):
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            d = tmp_path / "aclImdb" / split / label
            d.mkdir(parents=True)
            for i in range(10):
                (d / f"{i}_{7 if label == 'pos' else 2}.txt").write_text(f"{label} review {i}<br />end")
    parsed = R.parse_imdb({R.IMDB.key: tmp_path})
    assert [len(parsed.splits[s]) for s in ("train", "valid", "test")] == [14, 6, 20]
    assert parsed.splits["test"][0] == ("neg review 0 end", "negative")
    y = tmp_path / "yelp_review_polarity_csv"
    y.mkdir()
    for split in ("train", "test"):
        (y / f"{split}.csv").write_text("".join(f'"{1 + i % 2}","review {i}\\nmore"\n' for i in range(10)))
    parsed = R.parse_yelp({R.YELP.key: tmp_path})
    assert parsed.splits["test"][:2] == [("review 0 more", "negative"), ("review 1 more", "positive")]
    d = tmp_path / "dbpedia_csv"
    d.mkdir()
    (d / "classes.txt").write_text("Company\nEducationalInstitution\n")
    for split in ("train", "test"):
        (d / f"{split}.csv").write_text(
            "".join(f'{1 + i % 2},"Title {i}"," Abstract {i}."\n' for i in range(10))
        )
    parsed = R.parse_dbpedia({R.DBPEDIA.key: tmp_path})
    assert parsed.label_names == ("Company", "EducationalInstitution")
    assert parsed.splits["test"][1] == ("Title 1 Abstract 1.", "EducationalInstitution")
    (d / "test.csv").write_text('3,"Title","Abstract"\n')
    with pytest.raises(ParseError, match=r"test.csv: row 1: label '3'"):
        R.parse_dbpedia({R.DBPEDIA.key: tmp_path})


def test_cifar10_layout(tmp_path):
    d = tmp_path / "cifar-10-batches-bin"
    d.mkdir()
    (d / "batches.meta.txt").write_text(
        "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n"
    )
    for i in range(1, 6):
        write_cifar_bin(d / f"data_batch_{i}.bin", 1200, seed=i)
    test_x, _ = write_cifar_bin(d / "test_batch.bin", 30, seed=9)
    parsed = R.parse_cifar10({R.CIFAR10.key: tmp_path})
    assert [len(parsed.splits[s][1]) for s in ("train", "valid", "test")] == [1000, 5000, 30]
    assert parsed.label_names[-1] == "truck" and np.array_equal(parsed.splits["test"][0], test_x)
