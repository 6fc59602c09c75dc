"""Every parser on small files in the real format, including malformed input (file + line)."""

from __future__ import annotations

import numpy as np
import pytest
from datafmt import write_cifar_bin, write_idx, write_sword_module

from normlab.data import parsers as P
from normlab.data.sources import ParseError


def test_idx_roundtrip_and_truncation(tmp_path):
    arr = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    write_idx(tmp_path / "x-idx3-ubyte.gz", arr)
    assert np.array_equal(P.read_idx(tmp_path / "x-idx3-ubyte.gz"), arr)
    raw = tmp_path / "y-idx3-ubyte"
    write_idx(raw, arr)
    raw.write_bytes(raw.read_bytes()[:-10])
    with pytest.raises(ParseError, match=r"y-idx3-ubyte: IDX header says \(2, 28, 28\)"):
        P.read_idx(raw)


def test_cifar10_binary_records(tmp_path):
    images, labels = write_cifar_bin(tmp_path / "data_batch_1.bin", 7)
    got_x, got_y = P.read_cifar10_bin(tmp_path / "data_batch_1.bin")
    assert np.array_equal(got_x, images) and np.array_equal(got_y, labels)
    bad = tmp_path / "test_batch.bin"
    bad.write_bytes((tmp_path / "data_batch_1.bin").read_bytes()[:-1])
    with pytest.raises(ParseError, match="test_batch.bin: size .* not a multiple"):
        P.read_cifar10_bin(bad)


def test_sword_ztext_slots_and_osis_cleaning(tmp_path):
    ot = [
        '<title type="chapter">CHAPTER 1</title><w lemma="strong:H07225">In the beginning</w> God created',
        "",
        "\u00b6 And the earth was <note>Or, empty</note>without form &amp; void.",
    ]
    write_sword_module(tmp_path / "mod", {"ot": ot, "nt": ["Jesus wept."]})
    slots = P.read_sword_ztext(tmp_path / "mod")
    assert [P.clean_osis(s) for s in slots] == [
        "In the beginning God created",
        "",
        "And the earth was without form & void.",
        "Jesus wept.",
    ]


def test_sword_ztext_bad_index_names_file(tmp_path):
    write_sword_module(tmp_path / "mod", {"ot": ["a"], "nt": ["b"]})
    (tmp_path / "mod" / "nt.bzv").write_bytes(b"\x00" * 7)
    with pytest.raises(ParseError, match=r"nt\.bzv: size 7 is not a multiple of 10"):
        P.read_sword_ztext(tmp_path / "mod")


def test_brown_file_and_malformed_line(tmp_path):
    f = tmp_path / "ca01"
    f.write_text("\n\n\tThe/at Fulton/np-tl jury/nn said/vbd ./.\n\n\tIt/pps 's/bez ok/jj\n")
    assert P.read_brown_file(f) == [
        [("The", "at"), ("Fulton", "np-tl"), ("jury", "nn"), ("said", "vbd"), (".", ".")],
        [("It", "pps"), ("'s", "bez"), ("ok", "jj")],
    ]
    f.write_text("\tThe/at jury/nn\n\n\tbroken token/nn\n")
    with pytest.raises(ParseError, match=r"ca01:3: token 'broken' is not of the form word/tag"):
        P.read_brown_file(f)


def test_conll_wnut_conll2003_resume_formats(tmp_path):
    wnut = tmp_path / "ner.txt"
    wnut.write_text("@paulwalk\tO\nIt\tO\nLondon\tB-geo-loc\n\nhi\tO\n")
    assert P.read_conll(wnut, columns=2, sep="\t") == [
        (["@paulwalk", "It", "London"], ["O", "O", "B-geo-loc"]),
        (["hi"], ["O"]),
    ]
    conll = tmp_path / "train.txt"
    conll.write_text(
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP I-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP I-MISC\n\n"
    )
    sents = P.read_conll(conll, columns=4)
    assert sents == [(["EU", "rejects", "German"], ["I-ORG", "O", "I-MISC"])]
    assert P.iob1_to_bio(["I-ORG", "I-ORG", "B-ORG", "O", "I-PER"]) == [
        "B-ORG",
        "I-ORG",
        "B-ORG",
        "O",
        "B-PER",
    ]
    assert P.bmes_to_bio(["B-NAME", "M-NAME", "E-NAME", "O", "S-ORG"]) == [
        "B-NAME",
        "I-NAME",
        "I-NAME",
        "O",
        "B-ORG",
    ]
    conll.write_text("EU NNP B-NP I-ORG\nrejects VBZ O\n")
    with pytest.raises(ParseError, match=r"train.txt:2: expected 4 columns, got 3"):
        P.read_conll(conll, columns=4)
    with pytest.raises(ParseError, match="not a BIO tag"):
        P.check_bio(wnut, [(["x"], ["Q-geo"])])


def test_label_text_csv_pang_lee_yelp_dbpedia(tmp_path):
    pl = tmp_path / "polarity-en-pang&lee2.csv"
    pl.write_bytes('\ufeff"1","the rock is "" great "" . \n"\n"-1","dull ."\n'.encode())
    assert P.read_label_text_csv(pl) == [("1", 'the rock is " great " .'), ("-1", "dull .")]
    yelp = tmp_path / "train.csv"
    yelp.write_text('"1","Bad.\\nVery bad."\n"2","Good ""food"""\n')  # quotes doubled, \\n literal
    assert P.read_label_text_csv(yelp, encoding="utf-8", backslash_newlines=True) == [
        ("1", "Bad. Very bad."),
        ("2", 'Good "food"'),
    ]
    db = tmp_path / "db.csv"
    db.write_text('1,"E. D. Abbott Ltd"," Abbott of Farnham"\n2,"only title"\n')
    with pytest.raises(ParseError, match=r"db.csv:2: expected at least 3 columns"):
        P.read_label_text_csv(db, text_columns=(1, 2), encoding="utf-8")


def test_email_and_non_email(tmp_path):
    msg = tmp_path / "00001.txt"
    msg.write_text(
        "From: a@b.c\nSubject: Win money\nContent-Type: multipart/alternative; boundary=XX\n\n"
        "--XX\nContent-Type: text/plain\n\nClick now\n--XX\nContent-Type: text/html\n\n<b>x</b>\n--XX--\n"
    )
    assert P.read_email_text(msg) == "Win money Click now"
    junk = tmp_path / "00002.txt"
    junk.write_text("no header here at all\n")
    with pytest.raises(ParseError, match=r"00002.txt:1: does not start with an e-mail header"):
        P.read_email_text(junk)


def test_lm_lines_and_bad_encoding(tmp_path):
    ptb = tmp_path / "ptb.train.txt"
    ptb.write_text(" aer banknote berlitz \n\n = Title = \n the <unk> N years\n")
    assert P.read_lm_lines(ptb) == [
        ["aer", "banknote", "berlitz"],
        ["=", "Title", "="],
        ["the", "<unk>", "N", "years"],
    ]
    ptb.write_bytes(b"fine line\nbad \xff byte\n")
    with pytest.raises(ParseError, match=r"ptb.train.txt:2: not valid utf-8"):
        P.read_lm_lines(ptb)


def test_imdb_folder(tmp_path):
    for label, text in (("pos", "Great film.<br /><br />Loved it"), ("neg", "Awful")):
        (tmp_path / "train" / label).mkdir(parents=True)
        (tmp_path / "train" / label / "0_9.txt").write_text(text)
    assert P.read_imdb_folder(tmp_path / "train") == [("neg", "Awful"), ("pos", "Great film. Loved it")]
    (tmp_path / "train" / "pos" / "notes.txt").write_text("x")
    with pytest.raises(ParseError, match=r"notes.txt: file name is not ID_RATING.txt"):
        P.read_imdb_folder(tmp_path / "train")
