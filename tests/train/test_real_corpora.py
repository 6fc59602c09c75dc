"""The engine on every real default corpus of normlab.data: adapter shapes, then a few training steps."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from normlab import data
from normlab.train import train
from normlab.train.families import get_family
from normlab.train.tasks import from_normlab_data

from .conftest import run_config

CASES = [
    ("translation", "bible_es_en"),
    ("lm", "brown_lm"),
    ("tagging", "brown_pos"),
    ("tagging", "wnut16"),
    ("classification", "rt_polarity"),
    ("classification", "spamassassin"),
    ("image", "fashion_mnist"),
]


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory):
    """$NORMLAB_DATA when set (a prepared cache is reused), else a fresh folder for this module."""
    return os.environ.get("NORMLAB_DATA") or str(tmp_path_factory.mktemp("normlab_data"))


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("family, name", CASES)
def test_engine_trains_on_a_real_corpus(family, name, data_cache, tmp_path):
    data.prepare(name, data_cache)
    options = {"cache": data_cache, "max_examples": 128, "max_eval_examples": 40}
    if "max_len" in get_family(family).data_options:  # translation and image take no max_len
        options["max_len"] = 256
    task = from_normlab_data(family, name, options)
    assert task.info["examples"] == {"train": 128, "valid": 40, "test": 40}
    if family == "image":
        images, labels = task.splits["train"]
        assert images.dtype == torch.float32 and images.shape[1:] == (1, 28, 28) and 0 <= images.min() <= 1
        assert task.n_classes == 10 and int(labels.max()) < 10
    else:
        first = task.splits["train"][0]
        ids = first if family == "lm" else first[0]
        assert isinstance(ids, np.ndarray) and ids.size and int(ids.max()) < task.vocab_size
        assert task.pad_id not in np.asarray(ids)
    if family == "lm":
        assert task.eos_id not in task.splits["train"][0]  # the stored <eos> is left to the batcher
    if family == "translation":
        assert isinstance(task.detokenize(list(task.splits["test"][0][1])), str)
    if name == "wnut16":
        assert task.tag_scheme == "iob2"
    if name == "brown_pos":
        assert task.tag_scheme == "tags"

    cfg = run_config(
        family,
        data={"source": "normlab", "name": name, "options": options},
        model={"norm": "bn", "placement": "pre"},
        train={"max_steps": 6, "log_every": 3, "max_tokens": 512},
        eval={"beam": 1, "max_len_b": 8},
    )
    final = train(cfg, tmp_path / "run")
    assert final["status"] == "completed", final
    assert final["test"]["population"] and final["test"]["batch_stats"]


def test_a_dataset_of_another_family_is_refused(tmp_path):
    with pytest.raises((ValueError, FileNotFoundError), match="normlab prepare|not 'lm'"):
        from_normlab_data("lm", "wnut16", {"cache": str(tmp_path)})


def test_unknown_data_option_is_named():
    valid = "cache, max_examples, max_eval_examples, max_len, length_range"
    with pytest.raises(ValueError, match=f"unknown key.*max_exampels.*valid: {valid}"):
        from_normlab_data("lm", "brown_lm", {"max_exampels": 3})
