"""IWSLT14 as prepare-iwslt14.sh makes it, end to end on a tiny archive the test writes: fetch from a
file:// URL -> the recipe (normlab.data.datasets.translation_paper.parse_iwslt14) -> BPE, dictionary ->
prepared arrays -> load -> decode, and a few training steps scored with both BLEU flavours."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile

import numpy as np
import pytest

from normlab.data import card, load, mt, prepare, registry
from normlab.data.datasets import translation_paper as tp
from normlab.data.sources import Artifact, Lock, UrlSource

GERMAN = ["Wir haben's geschafft!", "Das ist gut, oder?", "Danke schön.", "Ich weiß es nicht."]
ENGLISH = ["We've made it!", "That's good, isn't it?", "Thank you.", "I don't know."]


def train_lines(lang: str) -> list[str]:
    """62 sentence lines after the meta lines: pair 5 fails the ratio (4 tokens vs 1), pair 10 is
    176 tokens long; the other 60 survive clean-corpus-n."""
    base = GERMAN if lang == "de" else ENGLISH
    lines = []
    for i in range(62):
        if i == 4:
            lines.append("Eins zwei drei vier" if lang == "de" else "One")
        elif i == 9:
            lines.append(" ".join(["Wort" if lang == "de" else "word"] * 176))
        else:
            lines.append(f"{i} {base[i % 4]}")
    return lines


@pytest.fixture
def tiny_iwslt(tmp_path, monkeypatch):
    src = tmp_path / "src" / "de-en"
    src.mkdir(parents=True)
    for lang in ("de", "en"):
        meta = (f"<url>http://www.ted.com/talks/{lang}.html</url>\n<keywords>talks</keywords>\n<talkid>1</talkid>\n"
                f"<title>{'Titel' if lang == 'de' else 'Title'}</title>\n")
        (src / f"train.tags.de-en.{lang}").write_text(meta + "".join(line + "\n" for line in train_lines(lang)))
        for k, name in enumerate(tp.IWSLT14_TEST_SETS):
            first = "Ich weiß es nicht." if lang == "de" else "I don’t know."
            (src / f"{name}.de-en.{lang}.xml").write_text(
                f'<mteval>\n<doc docid="{k}">\n<seg id="1"> {first} </seg>\n<seg id="2">{k}</seg>\n</doc>\n</mteval>\n')
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src, arcname="de-en")
    archive = tmp_path / "de-en.tgz"
    archive.write_bytes(buf.getvalue())
    art = Artifact(key=tp.IWSLT14_TGZ.key, filename="de-en.tgz", sources=(UrlSource(archive.as_uri()),),
                   members=tp.IWSLT14_TGZ.members)
    spec = dataclasses.replace(tp.IWSLT14_DE_EN, name="tiny_iwslt", artifacts=(art,),
                               options={**tp.IWSLT14_OPTIONS, "bpe_merges": 40})
    monkeypatch.setitem(registry.DATASETS, "tiny_iwslt", spec)
    lock = Lock(path=tmp_path / "lock.json")
    lock.entries[art.key] = {"file": art.filename, "sha256": hashlib.sha256(archive.read_bytes()).hexdigest()}
    return lock


def test_prepare_iwslt14_as_the_script(tmp_path, tiny_iwslt):
    cache = tmp_path / "cache"
    folder = prepare("tiny_iwslt", cache, lock=tiny_iwslt, quiet=True)
    c = card("tiny_iwslt", cache)
    # the title line is a sentence for the script; 63 lines, 2 pairs dropped by clean-corpus-n
    assert c["raw_counts"] == {"train_tags_lines": 63, "after_clean_corpus": 61}
    assert {s: c["splits"][s]["examples"] for s in ("train", "valid", "test")} == {"train": 59, "valid": 2, "test": 10}
    train, valid, test = (load("tiny_iwslt", s, cache) for s in ("train", "valid", "test"))
    text = train.target_text()
    assert train.meta["source_eos"] is True and train.meta["text"]["lowercase"] is True
    # cleaned line 1 is the title; valid = cleaned lines 23 and 46 = sentences 23 and 46 (one title, two dropped)
    assert [text.tokenized(valid.target[i]) for i in range(2)] == ["23 i don &apos;t know .", "46 thank you ."]
    assert text.tokenized(valid.tokens[0]) == "23 ich weiß es nicht ."
    assert text.tokenized(train.target[0]) == "title"
    assert text.tokenized(train.tokens[1]) == "0 wir haben &apos; s geschafft !"
    # the test set: seg text, ’ -> ', tokenised, lowercased, not cleaned; references untokenised for sacreBLEU
    assert text.tokenized(test.target[0]) == "i don &apos;t know ."
    assert text.tokenized(test.tokens[0]) == "ich weiß es nicht ."
    assert [test.reference(i) for i in range(2)] == ["I don't know.", "0"]
    assert valid.reference(1) == "46 Thank you."
    assert test.decode(test.target[0]) == "i don't know."
    # the subwords: subword-nmt codes beside a dictionary in fairseq's order; every train token known
    codes = (folder / mt.CODES_FILE).read_text()
    assert codes.startswith("#version: 0.2\n") and len(codes.splitlines()) == 41
    symbols = [train.tokenizer.id_to_token(i) for i in range(train.vocab_size)]
    assert symbols[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"] and train.vocab_size % 8 == 0
    assert train.unk_id not in np.asarray(train.tokens.ids) and train.unk_id not in np.asarray(train.target.ids)
    bpe = mt.BpeCodes(codes)
    assert text.bpe(train.tokens[1]) == bpe.apply(["0 wir haben &apos; s geschafft !"])[0]
    files = json.loads((folder / "meta.json").read_text())["files"]
    assert {"bpe_codes.txt", "tokenizer.json", "test/reference_text.npy"} <= set(files)


def test_a_few_training_steps_report_both_bleu_flavours(tmp_path, tiny_iwslt):
    from normlab.train import train

    cache = tmp_path / "cache"
    prepare("tiny_iwslt", cache, lock=tiny_iwslt, quiet=True)
    cfg = {
        "task": "translation",
        "data": {"source": "normlab", "name": "tiny_iwslt", "options": {"cache": str(cache)}},
        "model": {"d_model": 16, "n_heads": 2, "d_ff": 32, "n_layers": 1},
        "train": {"max_steps": 3, "log_every": 3, "max_tokens": 400, "threads": 1, "progress": "off"},
        "eval": {"beam": 2, "max_len_b": 5},
    }
    final = train(cfg, tmp_path / "run")
    test = final["test"]["population"]
    assert 0.0 <= test["bleu_tok"] <= 100.0 and 0.0 <= test["bleu"] <= 100.0
    assert "case:lc" in test["bleu_signature"]
    assert test["bleu_tok_signature"] == (
        "nrefs:1|case:lc|tok:moses+bpe-removed|compound:no|smooth:none|scorer:fairseq-bleu4")
