"""Image classification: Fashion-MNIST (default corpus) and CIFAR-10 (the paper's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import parsers as P
from ..build import Parsed
from ..sources import Artifact, DebianSource, ParseError, PublisherFile, PublisherSource
from ..spec import SPLIT_SEED, DatasetSpec, url_artifact
from ..text import holdout

# ------------------------------------------------------------------------------- Fashion-MNIST

FASHION_LABELS = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
_FASHION_DIR = "usr/share/datasets/fashion-mnist"


def _zalando(base_url: str) -> PublisherSource:
    """Zalando Research's own four .gz files (Debian recompressed them: other bytes, same IDX data)."""
    files = tuple(PublisherFile(f"zalando:{n}", f"{base_url}/{n}", f"{_FASHION_DIR}/{n}") for n in FASHION_FILES)
    return PublisherSource("Zalando Research", files)


FASHION_DEB = Artifact(
    key="deb:dataset-fashion-mnist=0.0~git20200523.55506a9-1",
    filename="dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
    sources=(
        DebianSource("dataset-fashion-mnist", "0.0~git20200523.55506a9-1"),
        _zalando("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"),  # the README's links
        _zalando(  # the same files in the publisher's git repository, at a fixed commit
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/"
            "b2617bb6d3ffa2e429640350f613e3291e10b141/data/fashion"
        ),
    ),
    members=(f"{_FASHION_DIR}/*-ubyte.gz",),
    content=tuple((f"{_FASHION_DIR}/{n}", "gunzip") for n in FASHION_FILES),
)


def parse_fashion_mnist(paths: dict[str, Path]) -> Parsed:
    root = paths[FASHION_DEB.key] / _FASHION_DIR
    return _idx_splits(root, FASHION_LABELS)


def _idx_splits(root: Path, label_names: tuple[str, ...]) -> Parsed:
    train_x = P.read_idx(root / "train-images-idx3-ubyte.gz")
    train_y = P.read_idx(root / "train-labels-idx1-ubyte.gz").astype(np.int64)
    test_x = P.read_idx(root / "t10k-images-idx3-ubyte.gz")
    test_y = P.read_idx(root / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    for x, y, name in ((train_x, train_y, "train"), (test_x, test_y, "t10k")):
        if len(x) != len(y):
            raise ParseError(root, None, f"{name}: {len(x)} images but {len(y)} labels")
    rest, valid = holdout(len(train_y), 5000, SPLIT_SEED)
    return Parsed(
        splits={
            "train": (train_x[rest], train_y[rest]),
            "valid": (train_x[valid], train_y[valid]),
            "test": (test_x, test_y),
        },
        label_names=label_names,
        raw_counts={"train_images": len(train_y), "test_images": len(test_y)},
    )


FASHION_MNIST = DatasetSpec(
    "fashion_mnist",
    "image",
    "Fashion-MNIST (Zalando)",
    (FASHION_DEB,),
    parse_fashion_mnist,
    license="MIT (Expat), Zalando SE",
    default=True,
    stands_for="CIFAR-10 (image TID analysis)",
    splits=f"official 60k train / 10k test; 5,000 of train held out as valid (seed {SPLIT_SEED})",
    preprocessing="none: uint8 28x28 grey images",
    expected_splits={"train": 55_000, "valid": 5_000, "test": 10_000},
    expected_raw_counts={"train_images": 60_000, "test_images": 10_000},
)

# ------------------------------------------------------------------------------- CIFAR-10

CIFAR10_TGZ = url_artifact(
    "url:cifar-10-binary",
    "cifar-10-binary.tar.gz",
    "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    members=("cifar-10-batches-bin/*",),
)


def parse_cifar10(paths: dict[str, Path]) -> Parsed:
    root = paths[CIFAR10_TGZ.key] / "cifar-10-batches-bin"
    names = tuple(n.strip() for n in P.read_lines(root / "batches.meta.txt") if n.strip())
    batches = [P.read_cifar10_bin(root / f"data_batch_{i}.bin") for i in range(1, 6)]
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    test_x, test_y = P.read_cifar10_bin(root / "test_batch.bin")
    rest, valid = holdout(len(y), 5000, SPLIT_SEED)
    return Parsed(
        splits={"train": (x[rest], y[rest]), "valid": (x[valid], y[valid]), "test": (test_x, test_y)},
        label_names=names,
        raw_counts={"train_images": len(y), "test_images": len(test_y)},
    )


CIFAR10 = DatasetSpec(
    "cifar10",
    "image",
    "CIFAR-10 (binary version)",
    (CIFAR10_TGZ,),
    parse_cifar10,
    license="no explicit license (Krizhevsky 2009)",
    stands_for="image TID analysis (Wang et al. 2022)",
    splits=f"official 50k/10k; 5,000 of train held out as valid (seed {SPLIT_SEED})",
    preprocessing="none: uint8 32x32x3 (channels last)",
    expected_splits={"train": 45_000, "valid": 5_000, "test": 10_000},  # 5 batches + 1 of 10,000 (publisher)
    expected_raw_counts={"train_images": 50_000, "test_images": 10_000},
)
