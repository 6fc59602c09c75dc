"""What a dataset declaration is (`DatasetSpec`), and the small helpers the declarations share.

Each dataset is declared once, in `datasets/<group>.py`: its artifacts (the files it needs, with
their sources), its parse function and its spec, side by side.  `registry.py` collects them.

Parse functions get `paths`: artifact key -> unpacked folder (artifacts with `members`) or the
raw file, and return a `Parsed` with the final splits (all splits are fixed or seeded).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .build import Parsed
from .sources import Artifact, ParseError, UrlSource

SPLIT_SEED = 1234  # one seed for every seeded split of every dataset
SEQ_SPLIT = f"80/10/10 by a seeded permutation (seed {SPLIT_SEED})"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    family: str  # image | translation | lm | lm_stream | tagging | classification
    title: str
    artifacts: tuple[Artifact, ...]
    parse: Callable[[dict[str, Path]], Parsed]
    license: str
    splits: str  # how the splits are made, for the card and docs
    preprocessing: str
    stands_for: str  # which paper dataset this is, or stands in for
    default: bool = False
    options: dict = field(default_factory=dict)
    # What parsing must give (checked by `prepare`; None: unknown, not checked): examples per split,
    # and a subset of the parser's raw counts.  Known for the default corpora (measured on the pinned
    # files) and for the papers' datasets whose sizes their publishers state.
    expected_splits: dict[str, int] | None = None
    expected_raw_counts: dict[str, int] | None = None


def one(root: Path, pattern: str) -> Path:
    """The single file under `root` matching `pattern` (a ParseError otherwise)."""
    found = sorted(Path(root).glob(pattern))
    if len(found) != 1:
        raise ParseError(root, None, f"expected one file matching {pattern!r}, found {len(found)}")
    return found[0]


def take(items: list, idx: np.ndarray) -> list:
    return [items[i] for i in idx]


def url_artifact(key: str, filename: str, *urls: str, members: tuple[str, ...] = ()) -> Artifact:
    """An artifact downloaded from its canonical URL(s) (the papers' datasets)."""
    return Artifact(key=key, filename=filename, sources=tuple(UrlSource(u) for u in urls), members=members)
