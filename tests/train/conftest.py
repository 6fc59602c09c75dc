from __future__ import annotations

import copy

import pytest

TINY_MODEL = {"d_model": 32, "n_heads": 2, "d_ff": 64, "n_layers": 1, "dropout": 0.1}


def run_config(task: str, **sections) -> dict:
    """A tiny run config for ``task``; ``sections`` update the defaults below section by section."""
    cfg = {
        "task": task,
        "seed": 7,
        "data": {"source": "synthetic", "options": {"n_train": 192, "n_valid": 32, "n_test": 32}},
        "model": dict(TINY_MODEL),
        "optim": {
            "lr": 3e-3,
            "warmup_steps": 10,
            "schedule": "inverse_sqrt",
            "weight_decay": 0.0,
            "label_smoothing": 0.0,
            "clip_norm": 1.0,
        },
        "train": {
            "max_steps": 40,
            "max_tokens": 192,
            "batch_size": 32,
            "log_every": 10,
            "threads": 1,
            "progress": "off",
        },
        "eval": {"beam": 2, "max_len_b": 4},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **copy.deepcopy(value)}
        else:
            cfg[key] = value
    return cfg


@pytest.fixture
def make_config():
    return run_config


def tensorboard_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] of the event files in ``folder`` as TensorBoard shows them (purges applied)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: keep every event
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


# --- tiny prepared datasets, one per family, built by normlab.data's real pipeline ----------------

TINY_WORDS = "the cat sat on a mat and dog ran far away".split()


def _tiny_parsed(family: str):
    """A few dozen examples of ``family`` as a parser returns them; example i is i % 9 + 1 words long,
    so the longest example sits at a known place in every split."""
    import numpy as np

    from normlab.data.build import Parsed

    rng = np.random.default_rng(0)

    def words(i):
        return [TINY_WORDS[(i + k) % len(TINY_WORDS)] for k in range(i % 9 + 1)]

    def split(n, offset):
        if family == "image":
            return (rng.integers(0, 256, size=(n, 8, 8), dtype=np.uint8), rng.integers(0, 3, size=n))
        made = [words(i + offset) for i in range(n)]
        if family == "translation":
            return [(" ".join(w), " ".join(reversed(w))) for w in made]
        if family == "lm":
            return made
        if family == "tagging":
            return [(w, ["B-X" if k == 0 else "O" for k in range(len(w))]) for w in made]
        return [(" ".join(w), "pos" if len(w) % 2 else "neg") for w in made]

    labels = {"image": ("a", "b", "c"), "tagging": ("O", "B-X"), "classification": ("neg", "pos")}
    return Parsed(splits={"train": split(40, 0), "valid": split(12, 3), "test": split(12, 5)},
                  label_names=labels.get(family, ()))


TINY_FAMILIES = ("translation", "lm", "tagging", "classification", "image")


@pytest.fixture
def tiny_datasets(tmp_path_factory, monkeypatch):
    """``tiny_<family>`` registered in normlab.data for this test and prepared in a cache shared by the
    session (returned): the real builders and card writer, on data written here."""
    from normlab.data import prepare, registry

    cache = tmp_path_factory.getbasetemp() / "tiny_data_cache"
    for family in TINY_FAMILIES:
        name = f"tiny_{family}"
        spec = registry.DatasetSpec(
            name, family, f"tiny {family}", (), lambda paths, family=family: _tiny_parsed(family),
            license="test data", splits="fixed", preprocessing="as the family's", stands_for="tests",
            options={"bpe_vocab_size": 60} if family == "translation" else {},
        )
        monkeypatch.setitem(registry.DATASETS, name, spec)
        prepare(name, cache, quiet=True)
    return cache
