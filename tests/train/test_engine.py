"""The training engine end to end on tiny synthetic tasks (real models, real optimiser, real files)."""

from __future__ import annotations

import json

import pytest

from normlab.train import train

FAMILIES = ["translation", "lm", "classification", "tagging", "image"]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def train_losses(out):
    return [r["loss"] for r in read_jsonl(out / "metrics.jsonl") if r["kind"] == "train"]


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_trains_and_its_loss_falls(family, make_config, tmp_path):
    cfg = make_config(family, model={"norm": "bn", "placement": "pre"}, train={"max_steps": 60})
    final = train(cfg, tmp_path / "run")
    losses = train_losses(tmp_path / "run")
    assert final["status"] == "completed" and final["steps"] == 60
    assert losses[-1] < 0.8 * losses[0], losses
    test = final["test"]
    assert set(test) == {"population", "batch_stats"}  # a BN model is evaluated twice
    metric = final["primary_metric"]
    assert metric in test["population"] and metric in test["batch_stats"]
    assert final["config_hash"] and final["versions"]["torch"] and final["peak_memory_mb"] > 0


def test_an_ln_model_is_evaluated_once(make_config, tmp_path):
    final = train(make_config("classification", train={"max_steps": 10}), tmp_path / "run")
    assert set(final["test"]) == {"population"}


def test_same_seed_same_numbers_and_another_seed_other_numbers(make_config, tmp_path):
    cfg = make_config(
        "classification",
        model={"norm": "rbn", "norm_options": {"penalty_mean": 0.5}},
        train={"max_steps": 20},
    )
    a, b = train(cfg, tmp_path / "a"), train(cfg, tmp_path / "b")
    assert train_losses(tmp_path / "a") == train_losses(tmp_path / "b")
    assert a["test"] == b["test"]
    c = train({**cfg, "seed": 8}, tmp_path / "c")
    assert train_losses(tmp_path / "c") != train_losses(tmp_path / "a")
    assert c["test"] != a["test"]


def test_resume_after_an_interruption_reaches_the_uninterrupted_result(make_config, tmp_path):
    cfg = make_config(
        "translation",
        model={"norm": "rbn", "norm_options": {"penalty_mean": 1.0, "penalty_var": 0.1}},
        train={"max_steps": 40, "checkpoint_every": 20, "average_last": 2, "tid_every": 5},
    )
    whole = train(cfg, tmp_path / "whole")
    # killed at step 30: checkpoint 20 is the last one; steps 21-30 are logged and must be redone
    stopped = train(cfg, tmp_path / "split", stop_at_step=30)
    assert stopped["status"] == "interrupted" and not (tmp_path / "split" / "final.json").exists()
    assert train_losses(tmp_path / "split")[-1] == train_losses(tmp_path / "whole")[2]
    resumed = train(cfg, tmp_path / "split", resume=True)
    assert resumed["test"] == whole["test"]
    assert resumed["steps"] == whole["steps"] == 40
    assert train_losses(tmp_path / "split") == train_losses(tmp_path / "whole")
    tid = [{k: v for k, v in r.items()} for r in read_jsonl(tmp_path / "split" / "tid.jsonl")]
    assert tid == read_jsonl(tmp_path / "whole" / "tid.jsonl")
    assert resumed["averaged_checkpoints"] == ["step_00000020.pt", "step_00000040.pt"]
    # resuming a finished run changes nothing
    assert train(cfg, tmp_path / "split", resume=True) == json.loads(
        (tmp_path / "split" / "final.json").read_text()
    )


def test_forced_divergence_ends_cleanly_with_logs_intact(make_config, tmp_path):
    cfg = make_config(
        "lm",
        model={"norm": "none", "n_layers": 2},
        optim={"lr": 1e5, "warmup_steps": 0, "clip_norm": 0.0},
        train={"max_steps": 100},
    )
    final = train(cfg, tmp_path / "run")
    assert final["status"] == "diverged"
    assert final["diverged_at_step"] < 100 and final["test"] is None
    on_disk = json.loads((tmp_path / "run" / "final.json").read_text())
    assert on_disk["status"] == "diverged"
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert records[-1]["step"] == final["diverged_at_step"] and records[-1]["loss"] is None  # NaN -> null
    assert len(records) == final["diverged_at_step"] // 10


def test_online_tid_is_written_for_bn(make_config, tmp_path):
    cfg = make_config(
        "tagging",
        model={"norm": "bn", "n_layers": 2},
        train={"max_steps": 20, "tid_every": 5},
    )
    train(cfg, tmp_path / "run")
    online = read_jsonl(tmp_path / "run" / "tid.jsonl")
    assert {r["step"] for r in online} == {5, 10, 15, 20}
    assert {r["module"] for r in online} == {
        f"encoder.layers.{i}.{p}" for i in (0, 1) for p in ("attn_norm", "ffn_norm")
    }
    # the offline TID probe is `normlab probe` alone (it reads the run with normlab.train.load_run)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        ".lock", "checkpoints", "config.yaml", "final.json", "metrics.jsonl", "tid.jsonl"]


def test_checkpoint_averaging_uses_the_last_k(make_config, tmp_path):
    cfg = make_config("image", train={"max_steps": 40, "checkpoint_every": 10, "average_last": 3})
    final = train(cfg, tmp_path / "run")
    assert final["averaged_checkpoints"] == ["step_00000020.pt", "step_00000030.pt", "step_00000040.pt"]
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "last.pt",
        "step_00000020.pt",
        "step_00000030.pt",
        "step_00000040.pt",
    ]


def test_keep_freed_memory_applies_on_glibc_and_can_be_turned_off(monkeypatch):
    """mallopt is glibc's: on Linux it applies (every parameter accepted), and NORMLAB_KEEP_FREED_MEMORY=0
    turns it off; the arithmetic never depends on it (a paired run in docs/default_sizing.md)."""
    import platform

    from normlab.train.runtime import keep_freed_memory

    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert keep_freed_memory() is True
    monkeypatch.setenv("NORMLAB_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory() is False
