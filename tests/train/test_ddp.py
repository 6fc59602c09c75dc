"""Two CPU processes under torchrun (gloo): DistributedDataParallel with synchronised BN statistics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import yaml

from .conftest import run_config


def test_two_process_cpu_ddp_run_trains(tmp_path):
    cfg = run_config(
        "classification",
        model={"norm": "rbn", "norm_options": {"penalty_mean": 0.5}},
        train={"max_steps": 40, "checkpoint_every": 20, "tid_every": 10},
    )
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--standalone",
        "-m",
        "normlab.cli",
        "train",
        "--config",
        str(config),
        "--out",
        str(tmp_path / "out"),
    ]
    # own session, so a hang kills torchrun and both workers, not just the launcher
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.returncode == 0, stderr[-3000:]
    final = json.loads((tmp_path / "out" / "final.json").read_text())
    assert final["status"] == "completed" and final["world_size"] == 2 and final["steps"] == 40
    assert final["bn_sync"] is False  # per-device statistics by default, as the authors
    losses = [
        json.loads(line)["loss"] for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()
    ]
    assert losses[-1] < 0.8 * losses[0]
    assert set(final["test"]) == {"population", "batch_stats"}
