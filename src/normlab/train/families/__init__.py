"""Task families: one class per family, registered by name (as ``normlab.norms.NORMS`` registers norms).

=================  ===========================  =======================================================
name               class                        example, metric
=================  ===========================  =======================================================
``translation``    ``Translation``              (source ids, target ids); BLEU by beam search
``lm``             ``LanguageModeling``         sentence ids; perplexity
``lm_stream``      ``LMStream``                 a token stream in segments, Transformer-XL; perplexity
``classification`` ``Classification``           (ids, label); accuracy
``tagging``        ``Tagging``                  (ids, tag ids); entity F1 for IOB2 tags, else accuracy;
                                                a CRF tagger with ``model.crf``
``image``          ``ImageClassification``      (image, label); accuracy
=================  ===========================  =======================================================

The interface is :class:`~normlab.train.families.base.Family`.  A new family is one new file with a
``Family`` subclass, added here (or, in a test, ``FAMILIES[name] = cls``); the engine, the batching
and the objectives never test a family's name.
"""

from __future__ import annotations

from .base import IGNORE, SCORES, Family, SyntheticOptions, TextFamily
from .classification import Classification
from .image import ImageClassification
from .lm import LanguageModeling
from .lm_stream import LMStream
from .tagging import Tagging
from .translation import Translation

FAMILIES: dict[str, type[Family]] = {
    cls.name: cls
    for cls in (Translation, LanguageModeling, LMStream, Classification, Tagging, ImageClassification)
}


def get_family(family: str | Family) -> Family:
    """The family called ``family`` (a family object is returned as it is)."""
    if isinstance(family, Family):
        return family
    try:
        return FAMILIES[family]()
    except KeyError:
        raise ValueError(f"unknown task family {family!r}; valid: {', '.join(FAMILIES)}") from None


__all__ = [
    "FAMILIES",
    "IGNORE",
    "SCORES",
    "Classification",
    "Family",
    "ImageClassification",
    "LMStream",
    "LanguageModeling",
    "SyntheticOptions",
    "Tagging",
    "TextFamily",
    "Translation",
    "get_family",
]
