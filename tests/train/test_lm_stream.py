"""The lm_stream family: Transformer-XL on a token stream as the scripts train it, through the engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from normlab.models import ModelOptions
from normlab.models.transformer_xl import StreamingTransformerXL, evaluate_stream, stream_segments
from normlab.train import ConfigError, load_run, synthetic_task, train, validate
from normlab.train.batching import EpochStream, collate, split_batches
from normlab.train.checkpoint import load
from normlab.train.families import get_family
from normlab.train.tasks import from_normlab_data

from .conftest import run_config

XL = {"tgt_len": 8, "mem_len": 8, "eval_tgt_len": 6, "eval_batch_size": 4}


def stream_config(**sections) -> dict:
    model = {"d_model": 32, "n_heads": 2, "d_ff": 64, "n_layers": 2, "dropout": 0.1, "norm": "bn", "xl": XL}
    defaults = {"model": model, "train": {"max_steps": 60, "batch_size": 8, "log_every": 10}}
    return run_config("lm_stream", **{**defaults, **sections})


def run_task(cfg: dict):
    cfg = validate(cfg)
    task = synthetic_task("lm_stream", seed=cfg["seed"], **cfg["data"]["options"])
    return cfg, get_family("lm_stream").for_run(task, cfg)


def train_losses(out):
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()
            if json.loads(line)["kind"] == "train"]


def test_batches_are_the_scripts_full_segments_of_rows_in_order():
    cfg, task = run_task(stream_config())
    family = get_family("lm_stream")
    for split, (rows, seg) in {"train": (8, 8), "valid": (4, 6), "test": (4, 6)}.items():
        stream = torch.from_numpy(task.splits[split].ids)
        batches = split_batches(task, split, 999, 999, seed=0)
        expected = list(stream_segments(stream, rows, seg, tail=False))  # the scripts' get_fixlen_iter
        assert len(batches) == len(expected) == (len(stream) // rows - 1) // seg
        for indices, (inputs, targets) in zip(batches, expected, strict=True):
            batch = collate(task, split, indices)
            assert torch.equal(batch.tensors["tokens"], inputs) and torch.equal(batch.tensors["target"], targets)
            assert batch.n_targets == batch.n_tokens == rows * seg  # no padding: every row is full
    # an epoch visits the segments in order, every epoch
    assert all(np.array_equal(family.epoch_order(5, 1, e), np.arange(5)) for e in range(3))
    epoch = EpochStream(task, split_batches(task, "train", 0, 0, 0), seed=1)
    firsts = [next(epoch).indices[0] for _ in range(len(split_batches(task, "train", 0, 0, 0)) + 1)]
    assert firsts == [8 * s for s in range(len(firsts) - 1)] + [0]
    # every stored <eos> is in the stream and is predicted like any token
    assert (task.splits["train"].ids == task.eos_id).sum() == 192


def test_a_stream_without_its_geometry_or_too_short_is_refused():
    task = synthetic_task("lm_stream", n_train=10, n_valid=2, n_test=2)
    with pytest.raises(ValueError, match="no segment geometry.*for_run"):
        split_batches(task, "train", 64, 8, seed=0)
    with pytest.raises(ValueError, match="valid stream of .* too short for 4 rows"):
        get_family("lm_stream").for_run(task, validate(stream_config()))


def test_trains_through_the_engine_and_the_loss_falls(tmp_path):
    final = train(stream_config(), tmp_path / "run")
    losses = train_losses(tmp_path / "run")
    assert final["status"] == "completed" and final["primary_metric"] == "ppl" and final["epochs"] >= 1
    assert losses[-1] < 0.7 * losses[0], losses
    assert set(final["test"]) == {"population", "batch_stats"}
    assert final["test"]["population"]["ppl"] < 0.5 * 32  # well below a uniform guess over the vocabulary


def test_the_evaluation_is_evaluate_stream_of_the_model(tmp_path):
    final = train(stream_config(train={"max_steps": 30, "batch_size": 8, "log_every": 10}), tmp_path / "run")
    run = load_run(tmp_path / "run")
    assert isinstance(run.model, StreamingTransformerXL)
    assert run.model.xl.evaluation_lengths() == (6, 10)  # the scripts' memory: mem_len + tgt_len - eval_tgt_len
    for split in ("valid", "test"):
        nll, n = evaluate_stream(run.model, torch.from_numpy(run.task.splits[split].ids), 4, 6, 10, tail=False)
        assert final[split]["population"]["n_targets"] == n
        assert final[split]["population"]["loss"] == pytest.approx(nll / n, rel=1e-12)
        assert final[split]["population"]["ppl"] == pytest.approx(np.exp(nll / n), rel=1e-12)
    # the probe's forward runs a batch of any segments without memory
    batch = next(run.first_epoch())
    with torch.no_grad():
        log_probs = run.forward(batch)
    assert log_probs.shape == (8, 8, 32)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(8, 8), atol=1e-5)


def test_memory_is_carried_from_step_to_step_and_emptied_at_each_epoch():
    cfg, task = run_task(stream_config())
    family = get_family("lm_stream")
    torch.manual_seed(0)
    model = family.build_model(ModelOptions(**cfg["model"]), task)
    batches = split_batches(task, "train", 0, 0, 0)
    first, second = (collate(task, "train", batches[i]) for i in (0, 1))
    family.loss(model, first, 0.0)
    kept = model.carried_memory(second.indices)
    assert kept is not None and kept.length == 8 and len(kept.states) == 2
    assert all(not s.requires_grad for s in kept.states)  # no gradient into the memory
    model.eval()
    with torch.no_grad():
        with_memory, _ = model(second.tensors["tokens"], second.tensors["target"], kept)
        without, _ = model(second.tensors["tokens"], second.tensors["target"])
    assert (with_memory - without).abs().max() > 1e-4  # the carried memory changes the loss
    model.train()
    assert model.carried_memory(first.indices) is None  # segment 0: a new epoch starts empty
    with pytest.raises(ValueError, match="no memory for the segments starting at id 24"):
        model.carried_memory(batches[3])  # not the next segment


def test_resume_equals_the_uninterrupted_run_memory_included(tmp_path):
    """Killed at step 30, in the second epoch with a memory, and resumed: the same run, bit for bit."""
    cfg = stream_config(train={"max_steps": 50, "batch_size": 8, "log_every": 10, "checkpoint_every": 10})
    n_segments = len(split_batches(run_task(cfg)[1], "train", 0, 0, 0))
    assert 30 > n_segments and 30 % n_segments  # mid-way through the second epoch
    whole = train(cfg, tmp_path / "whole")
    stopped = train(cfg, tmp_path / "split", stop_at_step=30)
    assert stopped["status"] == "interrupted"
    state = load(tmp_path / "split" / "checkpoints" / "last.pt")["model"]
    assert state["carried_states"].shape == (2, 8, 8, 32)  # layers, rows, mem_len, d_model
    assert state["carried_position"].tolist() == [8 * (30 % n_segments), 8, 8]  # next first id, rows, positions
    resumed = train(cfg, tmp_path / "split", resume=True)
    assert train_losses(tmp_path / "split") == train_losses(tmp_path / "whole")
    assert resumed["test"] == whole["test"] and resumed["valid"] == whole["valid"]
    assert resumed["epochs"] == whole["epochs"] == 50 // n_segments - (50 % n_segments == 0)
    a, b = (load(tmp_path / run / "checkpoints" / "last.pt")["model"] for run in ("whole", "split"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    # a checkpoint without its memory is refused, never resumed with an empty or another one
    train(cfg, tmp_path / "broken", stop_at_step=30)
    path = tmp_path / "broken" / "checkpoints" / "last.pt"
    checkpoint = load(path)
    del checkpoint["model"]["carried_states"], checkpoint["model"]["carried_position"]
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match=f"no memory for the segments starting at id {8 * (30 % n_segments)}"):
        train(cfg, tmp_path / "broken", resume=True)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["model"]["xl"].update(mem_lenn=3), r"unknown key\(s\) model.xl.mem_lenn; valid keys: clamp_len"),
        (lambda c: c["model"]["xl"].update(tgt_len=0), "xl.tgt_len must be positive"),
        (lambda c: c["model"]["xl"].update(tgt_len="8"), "model.xl.tgt_len"),
        (lambda c: c["optim"].update(label_smoothing=0.1), "label_smoothing must be 0 for task lm_stream"),
        (lambda c: c.update(task="lm"), "model.xl applies to task lm_stream, not 'lm'"),
        (lambda c: c.update(task="tagging"), "model.xl applies to task lm_stream, not 'tagging'"),
    ],
)
def test_config_errors_name_the_option(edit, message):
    cfg = stream_config()
    edit(cfg)
    with pytest.raises(ConfigError, match=message):
        validate(cfg)


def test_a_prepared_lm_corpus_is_read_as_its_stream(tmp_path):
    """Sentences with their <eos>, in order: the first k sentences are a view of the memory-mapped ids."""
    from normlab.data.store import write_prepared

    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 30), ("valid", 8), ("test", 8)):
        seqs = [np.append(rng.integers(3, 30, size=k), 2) for k in rng.integers(2, 12, size=n)]
        offsets = np.concatenate([[0], np.cumsum([len(s) for s in seqs])]).astype(np.int64)
        arrays[split] = {"tokens": np.concatenate(seqs).astype(np.int32), "offsets": offsets}
    meta = {"family": "lm_stream", "splits": ["train", "valid", "test"], "vocab_size": 31, "pad_id": 30,
            "unk_id": 1, "eos_id": 2}
    write_prepared(tmp_path / "prepared" / "ptb", meta, {}, arrays, None)
    task = from_normlab_data("lm_stream", "ptb", {"cache": str(tmp_path), "max_examples": 20})
    stream = task.splits["train"].ids
    assert isinstance(stream.base, np.memmap) or isinstance(stream, np.memmap)
    assert stream.tolist() == arrays["train"]["tokens"][: arrays["train"]["offsets"][20]].tolist()
    assert task.vocab_size == 30  # the trailing <pad> never occurs in a stream
    assert from_normlab_data("lm", "ptb", {"cache": str(tmp_path)}).vocab_size == 31  # per sentence: padded
    with pytest.raises(ValueError, match=r"unknown key\(s\) max_len for task 'lm_stream'"):
        from_normlab_data("lm_stream", "ptb", {"cache": str(tmp_path), "max_len": 5})


def test_the_tid_probe_runs_on_a_stream_run(tmp_path):
    """The probe's real batches are the first segments, its sentence floor random segments (no memory)."""
    from normlab.tid.probe import probe_run

    train(stream_config(train={"max_steps": 20, "batch_size": 8, "log_every": 10}), tmp_path / "run")
    summary = probe_run(tmp_path / "run", tmp_path / "probe", batches=3, population_tokens=0)
    assert summary["status"] == "completed" and summary["n_batches"] == 3
    assert summary["tokens_per_batch"] == summary["sentence_tokens_per_batch"] == 64  # 8 segments of 8
    rows = [json.loads(line) for line in (tmp_path / "probe" / "tid_decomposition.jsonl").read_text().splitlines()]
    assert {r["module"] for r in rows} == {f"decoder.layers.{i}.{n}" for i in (0, 1) for n in ("attn_norm", "ffn_norm")}


def test_a_validation_pass_mid_epoch_leaves_the_training_memory_alone(tmp_path):
    """As the scripts' evaluate(): its own memory, so training goes on exactly as without it."""
    plain = stream_config(train={"max_steps": 30, "batch_size": 8, "log_every": 10})
    with_valid = stream_config(train={"max_steps": 30, "batch_size": 8, "log_every": 10, "eval_every": 10})
    train(plain, tmp_path / "plain")
    train(with_valid, tmp_path / "valid")
    assert train_losses(tmp_path / "plain") == train_losses(tmp_path / "valid")
    records = [json.loads(line) for line in (tmp_path / "valid" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "valid"] == [10, 20, 30]


def test_a_run_config_may_name_any_dataset_its_family_reads():
    """lm_stream trains on the stream of an lm corpus (Brown's) and lm on an lm_stream one (PTB per
    sentence): the config check follows ``Family.reads``, and still refuses another family's data."""
    data = lambda name: {"source": "normlab", "name": name, "options": {"cache": "/nonexistent"}}  # noqa: E731
    validate(stream_config(data=data("brown_lm")))
    validate(run_config("lm", data=data("ptb")))
    with pytest.raises(ConfigError, match="'brown_pos' is a 'tagging' dataset: set task: tagging"):
        validate(stream_config(data=data("brown_pos")))
