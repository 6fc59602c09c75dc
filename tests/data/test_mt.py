"""The steps of fairseq's translation recipes (normlab.data.mt) on small files and strings the tests
write, against outputs worked out by hand from the scripts' rules."""

from __future__ import annotations

import pytest

from normlab.data import mt
from normlab.data.errors import ParseError
from normlab.data.text import SEQ2SEQ_SPECIALS

# ------------------------------------------------------------------------------------- reading


def test_lines_split_on_newline_only(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("one\u2028still one\r\ntwo\x0cthree\n\nlast".encode())
    assert mt.read_lines(path) == ["one\u2028still one\r", "two\x0cthree", "", "last"]
    path.write_bytes(b"a\n\xff\n")
    with pytest.raises(ParseError, match=r"a.txt:2: not valid UTF-8"):
        mt.read_lines(path)


def test_iwslt_train_filter_keeps_titles_and_descriptions_as_sentences(tmp_path):
    path = tmp_path / "train.tags.de-en.en"
    path.write_text(
        "<url>http://www.ted.com/talks/x.html</url>\n"
        "<keywords>talks, science</keywords>\n"
        "<speaker>Jane Doe</speaker>\n"
        "<talkid>7</talkid>\n"
        "<title>Jane Doe: A talk</title>\n"
        "<description>TED Talk Subtitles and Transcript: about it</description>\n"
        "  Thank you so much.\n"
        "mentions <url> inline\n"
    )
    # grep -v drops lines *containing* <url>/<talkid>/<keywords>; <speaker> is not filtered by the script
    assert mt.iwslt_train_lines(path) == [
        "<speaker>Jane Doe</speaker>",
        "Jane Doe: A talk",
        "TED Talk Subtitles and Transcript: about it",
        "  Thank you so much.",
    ]


def test_seg_lines_as_prepare_iwslt14s_sed(tmp_path):
    path = tmp_path / "IWSLT14.TED.tst2010.de-en.en.xml"
    path.write_text(
        '<mteval>\n<doc docid="1">\n<talkid>1</talkid>\n'
        '<seg id="1"> It’s a ’test’ &amp; more </seg>\n'
        '<seg id="2">Second</seg>  \n'
        "</doc>\n</mteval>\n"
    )
    assert mt.seg_lines(path) == ["It's a 'test' &amp; more", "Second"]


def test_sgm_lines_as_input_from_sgm(tmp_path):
    path = tmp_path / "newstest2014-deen-src.de.sgm"
    path.write_text(
        '<srcset setid="newstest2014">\n<doc sysid="ref" docid="1">\n'
        '<SEG id="1">  Ein   "Test"  </SEG>\n'
        '<seg id="2">\n'
        "geteilt\n"
        "</seg>\n"
        '<seg id="3">zwei\n'
        "Zeilen</seg>\n"
        "</doc>\n"
    )
    # multi-line segments are joined without a separator, as the script's chop + .= does
    assert mt.sgm_lines(path) == ['Ein "Test"', "geteilt", "zweiZeilen"]


# ------------------------------------------------------------------------------------- Moses


def test_moses_tokenizer_with_the_scripts_defaults():
    en = [
        "It's a well-known fact, isn't it?",
        "Mr. Smith paid $5.50 (really) & left...",
        'He said "yes" | no <b>',
        "  spaced   out\tline  ",
        "",
    ]
    assert mt.moses_tokenize(en, "en") == [
        # English: the apostrophe goes with what follows; hyphens stay (no -a)
        "It &apos;s a well-known fact , isn &apos;t it ?",
        # Mr. is a non-breaking prefix; the final dots are one token
        "Mr. Smith paid $ 5.50 ( really ) &amp; left ...",
        # escaped as tokenizer.perl does without -no-escape
        "He said &quot; yes &quot; &#124; no &lt; b &gt;",
        "spaced out line",
        "",
    ]
    de = ["Geht's gut? Dr. Müller kam am 3. Mai.", "Das E-Mail-Konto (neu)."]
    # German: an apostrophe is split off on both sides; German non-breaking prefixes (Dr.) and ordinals
    assert mt.moses_tokenize(de, "de") == [
        "Geht &apos; s gut ? Dr. Müller kam am 3. Mai .",
        "Das E-Mail-Konto ( neu ) .",
    ]
    assert mt.moses_tokenize(["E-Mail-Konto"], "de", aggressive_dash_splits=True) == ["E @-@ Mail @-@ Konto"]


def test_tokenizing_and_bpe_in_worker_processes_keep_the_order(monkeypatch):
    monkeypatch.setattr(mt, "PARALLEL_FROM", 0)
    lines = [f"It's line {i}, isn't it?" for i in range(40)]
    tokenized = mt.moses_tokenize(lines, "en", workers=2)
    assert tokenized == [f"It &apos;s line {i} , isn &apos;t it ?" for i in range(40)]
    bpe = mt.BpeCodes(mt.learn_bpe(tokenized, 20))
    assert bpe.apply(tokenized, workers=2) == bpe.segment(tokenized)


def test_detokenize_undoes_the_tokenizer_mostly():
    for lang, line in (("en", "It's a well-known fact, isn't it? \"Yes\" & no."), ("de", "Gut, oder? Ja (wirklich)!")):
        assert mt.detokenize(mt.moses_tokenize([line], lang)[0], lang) == line
    # not always: why sacreBLEU scores against the untokenised references kept at preparation
    assert mt.detokenize(mt.moses_tokenize(["Geht's?"], "de")[0], "de") == "Geht 's?"


def test_lowercase_is_perls_lc():
    assert mt.lowercase(["Ärger MIT Straße", "ΣΟΦΟΣ ΣΟΦΟΣ"]) == ["ärger mit straße", "σοφοσ σοφοσ"]


# ------------------------------------------------------------------------------------- clean-corpus-n


def words(n: int, w: str = "w") -> str:
    return " ".join([w] * n)


def test_clean_corpus_ratio_and_length_limits_at_their_boundaries():
    pairs = [
        (words(3), words(2)),  # 0: ratio 1.5 exactly: kept
        (words(2), words(3)),  # 1: kept (either direction)
        (words(4), words(2)),  # 2: ratio 2: dropped
        (words(5), words(3)),  # 3: ratio 1.67: dropped
        (words(175), words(175)),  # 4: the limit itself: kept
        (words(176), words(175)),  # 5: one over: dropped
        (words(175), words(117)),  # 6: 175/117 = 1.496: kept
        (words(1), words(1)),  # 7: min 1: kept
        ("", words(1)),  # 8: empty: dropped
        ("a   b\t", " c  d "),  # 9: spaces collapsed and stripped: kept
        ("a | b", "c d"),  # 10: '|' deleted, then 2 words: kept
        ("x" * 1001, "y"),  # 11: a word over 1000 characters: dropped
    ]
    kept, src, tgt = mt.clean_corpus([a for a, _ in pairs], [b for _, b in pairs], ratio=1.5, min_len=1, max_len=175)
    assert kept == [0, 1, 4, 6, 7, 9, 10]
    assert src[-2:] == ["a b", "a b"] and tgt[-2:] == ["c d", "c d"]  # '|' goes before spaces collapse
    assert mt.clean_corpus(["x" * 1000], ["y"], min_len=1, max_len=5)[0] == [0]
    assert mt.clean_corpus([words(10)], [words(1)], min_len=1, max_len=80)[0] == []  # default ratio 9
    assert mt.clean_corpus([words(9)], [words(1)], min_len=1, max_len=80)[0] == [0]
    with pytest.raises(mt.TextError, match="3 and 2 lines"):
        mt.clean_corpus(["a", "b", "c"], ["a", "b"], min_len=1, max_len=5)


def test_clean_corpus_keeps_bars_of_factored_input():
    kept, src, _ = mt.clean_corpus(["a|N b|V", "c|N"], ["x", "y"], min_len=1, max_len=5)
    assert kept == [0, 1] and src == ["a|N b|V", "c|N"]


# ------------------------------------------------------------------------------------- BPE


CORPUS = ["low low low lower newest newest"]


def test_learn_bpe_merge_order_worked_out_by_hand():
    """Words with the end-of-word mark: l o w</w> x3, l o w e r</w> x1, n e w e s t</w> x2.
    Pair counts: (l,o) 4 -> merge 1.  Then (lo,w</w>) 3 and (w,e) 3 tie: subword-nmt takes the
    larger pair, ('w','e') -> merge 2; then (lo,w</w>) 3 -> merge 3; then four pairs of count 2
    tie, (n,e) (e,we) (we,s) (s,t</w>): the largest is ('we','s') -> merge 4."""
    assert mt.learn_bpe(CORPUS, 4) == "#version: 0.2\nl o\nw e\nlo w</w>\nwe s\n"
    # only pairs seen at least twice are merged
    assert mt.learn_bpe(["ab ab cd"], 10) == "#version: 0.2\na b</w>\n"


def test_learning_from_counted_words_equals_subword_nmt_on_the_text():
    import contextlib
    import io
    import random

    from subword_nmt.learn_bpe import learn_bpe

    rng = random.Random(0)
    vocab = ["low", "lower", "newest", "widest", "new", "wide", "a", "the", "sheep", "&apos;s"]
    lines = [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 9))) for _ in range(300)]
    text, codes = io.StringIO("".join(line + "\n" for line in lines)), io.StringIO()
    with contextlib.redirect_stderr(io.StringIO()):
        learn_bpe(text, codes, 60)
    assert mt.learn_bpe(lines, 60) == codes.getvalue()


def test_apply_bpe_and_remove_it_again():
    bpe = mt.BpeCodes(mt.learn_bpe(CORPUS, 4))
    lines = ["lower lowest newer low", "x", ""]
    # lower: l o w e r</w> -> lo w e r -> lo we r; lowest -> lo we s t -> lo wes t; newer -> n e we r
    assert bpe.apply(lines) == ["lo@@ we@@ r lo@@ wes@@ t n@@ e@@ we@@ r low", "x", ""]
    assert [mt.remove_bpe(b) for b in bpe.apply(lines)] == lines
    assert mt.remove_bpe("ab@@ c d@@") == "abc d"  # a trailing marked piece loses its mark


def test_joined_dictionary_order_cap_and_padding():
    texts = ["b a a", "c a b", "d"]  # a 3, b 2, c 1, d 1 (ties in code-point order)
    assert mt.joined_dictionary(texts, SEQ2SEQ_SPECIALS) == [*SEQ2SEQ_SPECIALS, "a", "b", "c", "d"]
    assert mt.joined_dictionary(texts, SEQ2SEQ_SPECIALS, nwords=6) == [
        *SEQ2SEQ_SPECIALS, "a", "b", "madeupword0000", "madeupword0001"]  # 6 counts the specials, padded to 8
    assert mt.joined_dictionary(texts, SEQ2SEQ_SPECIALS, threshold=2, padding_factor=1) == [*SEQ2SEQ_SPECIALS, "a", "b"]
    with pytest.raises(mt.TextError, match="special token"):
        mt.joined_dictionary(["a <unk>"], SEQ2SEQ_SPECIALS)


def test_ids_back_to_text_as_fairseq_generate_prints_them():
    symbols = (*SEQ2SEQ_SPECIALS, "it", "&apos;s", "well@@", "-@@", "known", "!")
    text = mt.MosesBpeText(symbols, frozenset({0, 2, 3}), 1, "en")
    ids = [2, 4, 5, 6, 7, 8, 1, 9, 3, 0]
    assert text.bpe(ids) == "it &apos;s well@@ -@@ known <unk> !"
    assert text.tokenized(ids) == "it &apos;s well-known <unk> !"
    assert text.tokenized(ids, escape_unk=True) == "it &apos;s well-known <<unk>> !"
    assert text.detokenized([4, 5, 6, 7, 8, 9]) == "it's well-known!"
