"""load_run: a finished run read back reproduces what the run computed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from normlab.norms import batch_stats_inference
from normlab.train import ConfigError, load_run, train
from normlab.train.batching import split_batches
from normlab.train.checkpoint import load
from normlab.train.objectives import evaluate

from .conftest import run_config


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "bn"
    cfg = run_config("tagging", model={"norm": "bn", "n_layers": 2}, train={"max_steps": 20})
    train(cfg, out)
    return out


def test_the_loaded_model_reproduces_the_runs_test_scores(finished):
    run = load_run(finished, threads=1)
    assert run.cfg == yaml.safe_load((finished / "config.yaml").read_text())
    assert run.final == json.loads((finished / "final.json").read_text())
    assert run.device == torch.device("cpu") and run.family.name == "tagging" and run.task.family == "tagging"
    weights = load(finished / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(v, weights[k]) for k, v in run.model.state_dict().items())
    # average_last = 1: the final evaluation used exactly these weights
    batches = split_batches(run.task, "test", run.cfg["train"]["max_tokens"], run.cfg["train"]["batch_size"],
                            run.cfg["seed"])
    with run.autocast():
        scores = evaluate(run.model, run.task, "test", batches, run.device, run.cfg["eval"])
        with batch_stats_inference(run.model):
            batch_scores = evaluate(run.model, run.task, "test", batches, run.device, run.cfg["eval"])
    assert scores == run.final["test"]["population"] and batch_scores == run.final["test"]["batch_stats"]


def test_the_first_epoch_visits_every_training_example_in_the_runs_order(finished):
    run = load_run(finished)
    epoch = list(run.first_epoch())
    order = np.random.default_rng([run.cfg["seed"], 0]).permutation(len(run.batches))  # the (seed, epoch) order
    assert [b.indices.tolist() for b in epoch] == [run.batches[i].tolist() for i in order]
    assert sorted(np.concatenate([b.indices for b in epoch]).tolist()) == list(range(192))
    with torch.no_grad():
        logits = run.forward(epoch[0])
    assert logits.shape == (*epoch[0].tensors["tokens"].shape, 3)


def test_what_is_not_a_finished_run_is_named(finished, tmp_path):
    with pytest.raises(FileNotFoundError, match="has no config.yaml"):
        load_run(tmp_path)
    (tmp_path / "config.yaml").write_text((finished / "config.yaml").read_text())
    (tmp_path / "final.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"has no checkpoints/last\.pt"):
        load_run(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes((finished / "checkpoints" / "last.pt").read_bytes())
    cfg = yaml.safe_load((finished / "config.yaml").read_text())
    cfg["train"]["tid_probe_batches"] = 4  # a run config of an older normlab
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="train.tid_probe_batches"):
        load_run(tmp_path)
    with pytest.raises(ValueError, match="device 'gpu' is not valid; valid values: auto, cpu, cuda"):
        load_run(finished, device="gpu")
