"""Two CPU processes under torchrun (gloo): DistributedDataParallel; BN statistics per process by default."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import torch
import yaml

from normlab.train import train

from .conftest import run_config, tensorboard_scalars


def torchrun_train(cfg: dict, out, nproc: int = 2, timeout: float = 240) -> dict:
    """`normlab train` of ``cfg`` into ``out`` under torchrun with ``nproc`` CPU processes; its final.json."""
    config = out.with_suffix(".yaml")
    config.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--standalone",
           "-m", "normlab.cli", "train", "--config", str(config), "--out", str(out)]
    # own session, so a hang kills torchrun and both workers, not just the launcher
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.returncode == 0, stderr[-3000:]
    return json.loads((out / "final.json").read_text())


def test_two_process_cpu_ddp_run_trains(tmp_path):
    cfg = run_config(
        "classification",
        model={"norm": "rbn", "norm_options": {"penalty_mean": 0.5}},
        train={"max_steps": 40, "checkpoint_every": 20, "tid_every": 10, "tensorboard": True},
    )
    final = torchrun_train(cfg, tmp_path / "out")
    assert final["status"] == "completed" and final["world_size"] == 2 and final["steps"] == 40
    assert final["bn_sync"] is False  # per-device statistics by default, as the authors
    losses = [
        json.loads(line)["loss"] for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()
    ]
    assert losses[-1] < 0.8 * losses[0]
    assert set(final["test"]) == {"population", "batch_stats"}
    # rank 0 alone writes TensorBoard events: one file, every log step once
    assert len(list((tmp_path / "out" / "tensorboard").iterdir())) == 1
    assert [s for s, _ in tensorboard_scalars(tmp_path / "out" / "tensorboard")["train/loss"]] == [10, 20, 30, 40]


def test_two_processes_equal_one_process_accumulating_two_batches_for_ln(tmp_path):
    """Rank r takes the epoch's batches r, r+2, ...; one process with update_freq 2 takes them in pairs:
    the same batches per update.  With the gradient normalised by the targets of both processes (as
    fairseq), the weights after the run agree to float32 round-off (the all-reduce sums in another order)."""
    model = {"norm": "ln", "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0}
    cfg = run_config("lm", model=model, seed=3, train={"max_steps": 4, "log_every": 2, "checkpoint_every": 4})
    two = torchrun_train(cfg, tmp_path / "two")
    one = train(run_config("lm", model=model, seed=3, train={**cfg["train"], "update_freq": 2}), tmp_path / "one")
    assert two["world_size"] == 2 and one["world_size"] == 1 and two["bn_sync"] is None
    a = torch.load(tmp_path / "two" / "checkpoints" / "last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "one" / "checkpoints" / "last.pt", weights_only=False)["model"]
    for name in b:
        if name.endswith("kv_proj.bias"):
            # the key half's gradient is zero in exact arithmetic (softmax ignores a shift of every
            # score), so Adam turns its round-off into ±lr steps: compare the value half only
            a[name], b[name] = a[name].chunk(2)[1], b[name].chunk(2)[1]
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-7, msg=name)
