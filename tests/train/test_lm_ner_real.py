"""The paper configuration's LM and NER models learn on the default corpora (slow: about a minute each).

Transformer-XL on the Brown LM stream (memory, adaptive softmax with projections) and the CRF tagger on
WNUT-16 (BIOES, character CNN) train briefly on one CPU thread; each must end well below the baseline
that knows only the data's frequencies.  The margins were fixed before these tests first ran:

* LM: test NLL per token at least 0.3 nats below the unigram model of the training stream (add-one
  counts), over exactly the tokens the evaluation predicts;
* NER: test CRF NLL per token at most 0.75 x the all-O-style baseline (every tag drawn independently
  from the training tag frequencies, in the BIOES tags the CRF learns), and entity F1 above the 0 that
  predicting all-O scores.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from normlab import data
from normlab.models.transformer_xl import stream_segments
from normlab.train import train, validate
from normlab.train.families import get_family
from normlab.train.tasks import from_normlab_data

pytestmark = [pytest.mark.slow, pytest.mark.network]


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory):
    """$NORMLAB_DATA when set (a prepared cache is reused), else a fresh folder for this module."""
    return os.environ.get("NORMLAB_DATA") or str(tmp_path_factory.mktemp("normlab_data"))


def test_transformer_xl_on_the_brown_stream_beats_the_unigram_model(data_cache, tmp_path):
    data.prepare("brown_lm", data_cache)
    options = {"cache": data_cache, "max_examples": 8000, "max_eval_examples": 600}
    cfg = validate({
        "task": "lm_stream", "seed": 1,
        "data": {"source": "normlab", "name": "brown_lm", "options": options},
        "model": {"d_model": 64, "n_heads": 2, "d_ff": 256, "n_layers": 2, "dropout": 0.1, "norm": "bn",
                  "placement": "pre", "activation_dropout": 0.1,
                  "xl": {"tgt_len": 32, "mem_len": 32, "eval_tgt_len": 32, "eval_batch_size": 10,
                         "cutoffs": [1000, 4000], "div_val": 2}},
        "optim": {"lr": 2.5e-3, "betas": [0.9, 0.999], "weight_decay": 0.0, "warmup_steps": 50,
                  "schedule": "cosine", "clip_norm": 0.25, "label_smoothing": 0.0},
        "train": {"max_steps": 700, "batch_size": 16, "log_every": 100, "threads": 1, "progress": "off"},
    })
    final = train(cfg, tmp_path / "run")
    assert final["status"] == "completed"

    task = get_family("lm_stream").for_run(from_normlab_data("lm_stream", "brown_lm", options), cfg)
    counts = np.bincount(task.splits["train"].ids, minlength=task.vocab_size)[: task.vocab_size] + 1.0
    log_p = np.log(counts / counts.sum())
    targets = torch.cat([t.flatten() for _, t in stream_segments(
        torch.from_numpy(np.asarray(task.splits["test"].ids, dtype=np.int64)), 10, 32, tail=False)])
    unigram = float(-log_p[targets.numpy()].mean())
    test = final["test"]["population"]
    assert test["n_targets"] == targets.numel()
    print(f"Brown stream: test NLL {test['loss']:.3f} nats/token, unigram {unigram:.3f}")
    assert test["loss"] < unigram - 0.3, (test["loss"], unigram)


def test_the_crf_tagger_on_wnut16_beats_the_tag_frequency_baseline(data_cache, tmp_path):
    data.prepare("wnut16", data_cache)
    options = {"cache": data_cache}
    cfg = validate({
        "task": "tagging", "seed": 1,
        "data": {"source": "normlab", "name": "wnut16", "options": options},
        "model": {"d_model": 64, "n_heads": 4, "d_ff": 128, "n_layers": 2, "dropout": 0.15, "norm": "bn",
                  "crf": True, "crf_options": {"tag_scheme": "bioes", "char_cnn": True, "fc_dropout": 0.3,
                                               "word_dropout": 0.02}},
        "optim": {"lr": 2e-3, "warmup_steps": 50, "schedule": "cosine", "weight_decay": 0.0,
                  "label_smoothing": 0.0},
        "train": {"max_steps": 600, "max_tokens": 4096, "max_sentences": 16, "log_every": 100, "threads": 1,
                  "progress": "off"},
    })
    final = train(cfg, tmp_path / "run")
    assert final["status"] == "completed" and final["primary_metric"] == "f1"

    task = get_family("tagging").for_run(from_normlab_data("tagging", "wnut16", options), cfg)
    train_tags = np.concatenate(list(task.splits["train"].fields["tags"]))
    test_tags = np.concatenate(list(task.splits["test"].fields["tags"]))
    frequency = np.bincount(train_tags, minlength=len(task.label_names)) + 1.0
    baseline = float(-np.log(frequency / frequency.sum())[test_tags].mean())
    test = final["test"]["population"]
    per_token = test["loss"] * test["n_targets"] / len(test_tags)  # the CRF's NLL is per sentence
    print(f"WNUT-16 CRF: test NLL {per_token:.3f} nats/token, tag-frequency baseline {baseline:.3f}, "
          f"F1 {test['f1']:.3f}")
    assert per_token <= 0.75 * baseline, (per_token, baseline)
    assert test["f1"] > 0.0
