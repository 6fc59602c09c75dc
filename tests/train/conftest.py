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
