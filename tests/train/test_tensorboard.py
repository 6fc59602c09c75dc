"""`train.tensorboard: true`: the event files hold the run's scalars, and a resumed run's events are
those of the uninterrupted run (read back with TensorBoard's own EventAccumulator)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from normlab.train import ConfigError, train, validate

from .conftest import run_config
from .conftest import tensorboard_scalars as events

TIMING = {"train/tokens_per_s", "train/elapsed_s"}  # wall-clock values: equal steps, not equal values


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def f32(x: float) -> float:
    return float(np.float32(x))  # TensorBoard stores scalars as float32


def rbn_config(**train_keys):
    return run_config(
        "lm",
        model={"norm": "rbn", "norm_options": {"penalty_mean": 1.0, "penalty_var": 0.1}},
        train={"max_steps": 40, "checkpoint_every": 20, "eval_every": 20, "tid_every": 5, "tensorboard": True,
               **train_keys},
    )


def test_the_events_hold_losses_lr_throughput_evaluations_and_per_layer_tid(tmp_path):
    final = train(rbn_config(), tmp_path / "run")
    seen = events(tmp_path / "run" / "tensorboard")
    metrics = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    train_rows = [r for r in metrics if r["kind"] == "train"]
    valid_rows = [r for r in metrics if r["kind"] == "valid"]
    assert [r["step"] for r in train_rows] == [10, 20, 30, 40] and [r["step"] for r in valid_rows] == [20, 40]

    # training: loss, task loss and RBN's penalty apart, lr, throughput, as metrics.jsonl has them
    for key in ("loss", "task_loss", "lr", "tokens_per_s", "epoch"):
        assert seen[f"train/{key}"] == [(r["step"], f32(r[key])) for r in train_rows], key
    assert all(r["task_loss"] < r["loss"] for r in train_rows)  # the penalty is in loss, not in task_loss
    assert seen["train/penalty"] == [(r["step"], f32(r["loss"] - r["task_loss"])) for r in train_rows]
    # every evaluation: the periodic ones and the final one (population and batch statistics)
    assert seen["valid/loss"] == [(r["step"], f32(r["loss"])) for r in valid_rows]
    assert seen["valid/ppl"] == [(r["step"], f32(r["ppl"])) for r in valid_rows]
    for split in ("valid", "test"):
        for stats in ("population", "batch_stats"):
            for metric in ("loss", "ppl"):
                assert seen[f"final/{split}/{stats}/{metric}"] == [(40, f32(final[split][stats][metric]))]
    # online TID: one curve per module and kind, at every tid_every step
    tid = read_jsonl(tmp_path / "run" / "tid.jsonl")
    curves = {f"tid/{r['kind']}/{r['module']}" for r in tid}
    assert len(curves) >= 4 and curves <= set(seen)
    for tag in curves:
        kind, module = tag.split("/", 2)[1:]
        assert seen[tag] == [(r["step"], f32(r["value"])) for r in tid if r["kind"] == kind and r["module"] == module]
    assert sorted({s for s, _ in seen[next(iter(curves))]}) == list(range(5, 41, 5))
    assert set(seen) == curves | {f"train/{k}" for k in ("loss", "task_loss", "penalty", "lr", "tokens_per_s",
                                                          "elapsed_s", "epoch")} | {
        "valid/loss", "valid/ppl"} | {f"final/{s}/{t}/{m}" for s in ("valid", "test")
                                      for t in ("population", "batch_stats") for m in ("loss", "ppl")}


def test_a_model_without_penalty_has_no_penalty_curve_and_task_loss_is_the_loss(tmp_path):
    train(run_config("classification", train={"max_steps": 20, "tensorboard": True}), tmp_path / "run")
    seen = events(tmp_path / "run" / "tensorboard")
    assert "train/penalty" not in seen and not any(t.startswith("tid/") for t in seen)
    rows = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    assert all(r["task_loss"] == r["loss"] for r in rows)


def test_a_resumed_run_leaves_the_events_of_the_uninterrupted_run(tmp_path):
    cfg = rbn_config()
    train(cfg, tmp_path / "whole")
    # killed at step 30: checkpoint 20 is the last one; the events of steps 21-30 are on disk already
    train(cfg, tmp_path / "split", stop_at_step=30)
    (first,) = (tmp_path / "split" / "tensorboard").iterdir()
    assert max(s for s, _ in events(first)["train/loss"]) == 30  # so the purge below has work to do
    train(cfg, tmp_path / "split", resume=True)
    assert len(list((tmp_path / "split" / "tensorboard").iterdir())) == 2  # a new file, purging from step 20
    whole, split = events(tmp_path / "whole" / "tensorboard"), events(tmp_path / "split" / "tensorboard")
    assert set(split) == set(whole)
    for tag in whole:
        if tag in TIMING:
            assert [s for s, _ in split[tag]] == [s for s, _ in whole[tag]], tag
        else:
            assert split[tag] == whole[tag], tag  # no step twice, none missing, the same values


def test_a_run_killed_before_its_first_checkpoint_starts_its_events_afresh(tmp_path):
    cfg = rbn_config()
    train(cfg, tmp_path / "split", stop_at_step=10)  # no checkpoint yet: --resume starts afresh
    train(cfg, tmp_path / "split", resume=True)
    train(cfg, tmp_path / "whole")
    assert len(list((tmp_path / "split" / "tensorboard").iterdir())) == 1
    whole, split = events(tmp_path / "whole" / "tensorboard"), events(tmp_path / "split" / "tensorboard")
    assert split["train/loss"] == whole["train/loss"]


def test_no_tensorboard_folder_unless_asked(tmp_path):
    train(run_config("classification", train={"max_steps": 10}), tmp_path / "run")
    assert not (tmp_path / "run" / "tensorboard").exists()


def test_tensorboard_without_the_package_is_a_one_line_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # what `import tensorboard` sees where it is missing
    with pytest.raises(ConfigError) as err:
        validate(run_config("classification", train={"tensorboard": True}))
    assert "pip install 'normlab[tensorboard]'" in str(err.value) and "\n" not in str(err.value)
    validate(run_config("classification", train={"tensorboard": False}))  # off: nothing is needed


def test_a_finished_tensorboard_run_reads_back_without_the_package(tmp_path, monkeypatch):
    from normlab.train import load_run

    train(run_config("classification", train={"max_steps": 10, "tensorboard": True}), tmp_path / "run")
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # e.g. `normlab probe` where only the core is installed
    assert load_run(tmp_path / "run").cfg["train"]["tensorboard"] is True
