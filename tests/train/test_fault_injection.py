"""Fault injection with real processes and real signals: a run killed (SIGKILL) at each write boundary
resumes to exactly the uninterrupted run's result, with no duplicate rows; two writers on one folder;
a changed config and a damaged checkpoint on resume; Snakemake killed under a running job.

The kill points are set by tests/train/fault_child.py, a `normlab train` process that wraps the
engine's write functions and kills itself at the boundary named (the engine has no test hooks).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from normlab.cli import main
from normlab.train import ConfigError, RunLockedError, RunStateError, train
from normlab.train import checkpoint as ckpt

from .conftest import run_config, tensorboard_scalars

CHILD = Path(__file__).with_name("fault_child.py")
BIN = Path(sys.executable).parent
TIMING = ("elapsed_s", "tokens_per_s")  # wall-clock fields of metrics.jsonl, the only ones allowed to differ

# 40 steps, a checkpoint every 15 (steps 15, 30 and the final 40), averaging all three; BN with online TID;
# TensorBoard events too
CONFIG = run_config(
    "tagging",
    model={"norm": "bn"},
    train={"max_steps": 40, "log_every": 5, "eval_every": 10, "checkpoint_every": 15, "average_last": 3,
           "tid_every": 5, "tensorboard": True},
)


def rows(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in path.read_text().splitlines()]


def write_config(tmp_path: Path, cfg: dict = CONFIG) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def killed_at(point: str, step: int, config: Path, out: Path) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, str(CHILD), point, str(step), "train", "--config", str(config),
                        "--out", str(out), "--resume"], capture_output=True, text=True, timeout=300)
    assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "run"
    final = train(CONFIG, out)
    return out, final


def assert_same_run(out: Path, final: dict, reference: tuple[Path, dict]) -> None:
    ref_out, ref = reference
    for key in ("status", "steps", "epochs", "tokens_seen", "averaged_checkpoints", "valid", "test", "config_hash"):
        assert final[key] == ref[key], key  # exactly: floats compared with ==
    for name in ("metrics.jsonl", "tid.jsonl"):
        got = rows(out / name)
        assert got == rows(ref_out / name), name
        assert len({json.dumps(r, sort_keys=True) for r in got}) == len(got), f"duplicate rows in {name}"
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == sorted(p.name for p in (ref_out / "checkpoints").iterdir())
    for name in names:
        a, b = (torch.load(d / "checkpoints" / name, weights_only=False)["model"] for d in (out, ref_out))
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert not [p for p in out.rglob("*.tmp")], "a temporary half was left behind"
    # TensorBoard shows the uninterrupted run's curves: every step once, the same values (timings aside)
    events, ref_events = (tensorboard_scalars(d / "tensorboard") for d in (out, ref_out))
    assert set(events) == set(ref_events)
    for tag, points in ref_events.items():
        same = (lambda e: [s for s, _ in e]) if tag.split("/")[-1] in TIMING else (lambda e: e)
        assert same(events[tag]) == same(points), tag


@pytest.mark.parametrize(
    ("point", "step"),
    [
        # step_30.pt is written, last.pt is still step 15's: the resume redoes 16-30 and must average a
        # fresh step_30 (the old order wrote last.pt first; killed here it averaged 15 and 40 without 30)
        ("between_checkpoint_writes", 30),
        ("mid_metrics_append", 35),  # a torn last line of metrics.jsonl, dropped with a warning
        pytest.param("in_checkpoint_write", 30, marks=pytest.mark.slow),  # a temporary half, removed
        pytest.param("after_last_checkpoint", 40, marks=pytest.mark.slow),  # all but final.json: average again
        pytest.param("in_final_evaluation", 40, marks=pytest.mark.slow),
    ],
)
def test_a_run_killed_at_a_write_boundary_resumes_to_the_uninterrupted_result(point, step, uninterrupted, tmp_path,
                                                                                capfd):
    config, out = write_config(tmp_path), tmp_path / "run"
    killed_at(point, step, config, out)
    assert not (out / "final.json").exists()
    if point == "between_checkpoint_writes":
        assert (out / "checkpoints" / "step_00000030.pt").exists()
        assert torch.load(out / "checkpoints" / "last.pt", weights_only=False)["step"] == 15
    if point == "in_checkpoint_write":
        assert list((out / "checkpoints").glob(".last.pt.*.tmp")), "the kill left no temporary half"
    if point == "mid_metrics_append":
        assert not (out / "metrics.jsonl").read_text().endswith("\n")
    capfd.readouterr()
    assert main(["train", "--config", str(config), "--out", str(out), "--resume"]) == 0
    assert ("dropped the torn last line" in capfd.readouterr().err) == (point == "mid_metrics_append")
    assert_same_run(out, json.loads((out / "final.json").read_text()), uninterrupted)


def test_a_run_folder_written_in_the_old_order_is_repaired_on_restore(uninterrupted, tmp_path):
    """A folder killed between the writes of the old order (last.pt of step 30 written, step_30.pt not):
    the restore rebuilds step_30.pt from last.pt, so the averaging is the uninterrupted run's."""
    out = tmp_path / "run"
    train(CONFIG, out, stop_at_step=30)
    (out / "checkpoints" / "step_00000030.pt").unlink()
    final = train(CONFIG, out, resume=True)
    assert_same_run(out, final, uninterrupted)


def paused_writer(config: Path, out: Path) -> subprocess.Popen:
    """A `normlab train` that holds the folder's lock, paused at step 10."""
    proc = subprocess.Popen([sys.executable, str(CHILD), "pause_at_step", "10", "train", "--config", str(config),
                             "--out", str(out)], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "paused").exists():
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() else "timeout"
        time.sleep(0.1)
    return proc


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holder_leaves_no_stale_lock(tmp_path, capfd):
    config, out = write_config(tmp_path), tmp_path / "run"
    holder = paused_writer(config, out)
    try:
        assert (out / ".lock").read_text().split()[0] == str(holder.pid)
        refusal = f"is being written by another normlab train (pid {holder.pid} "
        r = subprocess.run([str(BIN / "normlab"), "train", "--config", str(config), "--out", str(out), "--resume"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and refusal in r.stderr, r.stderr
        for extra in ([], ["--resume", "--restart-if-changed"]):  # without --resume too: the lock is named
            capfd.readouterr()
            assert main(["train", "--config", str(config), "--out", str(out), *extra]) == 2
            assert refusal in capfd.readouterr().err
        with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
            train(CONFIG, out, resume=True)
    finally:
        holder.kill()
        holder.wait()
    # the kernel dropped the lock with the process: the rerun resumes (from scratch: no checkpoint yet)
    assert main(["train", "--config", str(config), "--out", str(out), "--resume"]) == 0
    assert [row["step"] for row in rows(out / "metrics.jsonl") if row["kind"] == "train"] == list(range(5, 45, 5))


def test_resume_compares_the_config_before_returning_a_finished_run(uninterrupted, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(uninterrupted[0], out)
    other = {**CONFIG, "seed": 99}
    with pytest.raises(ConfigError, match="the config differs from the one"):
        train(other, out, resume=True)
    assert train(CONFIG, out, resume=True) == json.loads((out / "final.json").read_text())  # same config: returned
    final = train(other, out, resume=True, restart_if_changed=True)
    assert final["seed"] == 99 and final["test"] == train(other, tmp_path / "fresh")["test"]


def test_a_damaged_last_checkpoint_is_named_and_restart_if_changed_starts_afresh(uninterrupted, tmp_path):
    out = tmp_path / "run"
    train(CONFIG, out, stop_at_step=30)
    last = out / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:5000])  # cut: a copy that stopped half-way
    with pytest.raises(RunStateError, match=r"last\.pt is damaged and cannot be loaded .*--restart-if-changed"):
        train(CONFIG, out, resume=True)
    final = train(CONFIG, out, resume=True, restart_if_changed=True)
    assert_same_run(out, final, uninterrupted)


def test_a_damaged_metrics_line_before_the_last_is_refused(tmp_path):
    out = tmp_path / "run"
    train(CONFIG, out, stop_at_step=30)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    (out / "metrics.jsonl").write_text("\n".join([lines[0], lines[1][:10], *lines[2:]]) + "\n")
    with pytest.raises(RunStateError, match=r"metrics\.jsonl line 2 is not a JSON record"):
        train(CONFIG, out, resume=True)


def test_run_files_honour_the_umask(tmp_path):
    """0644 / 0755 by default, group-writable under umask 007 (mkstemp alone would give 0600)."""
    cfg = run_config("classification", train={"max_steps": 10, "checkpoint_every": 10})
    for mask, file_mode, dir_mode in ((0o022, 0o644, 0o755), (0o007, 0o660, 0o770)):
        out, before = tmp_path / f"run{mask:o}", os.umask(mask)
        try:
            train(cfg, out)
        finally:
            os.umask(before)
        for path in [out, *out.rglob("*")]:
            expected = dir_mode if path.is_dir() else file_mode
            assert path.stat().st_mode & 0o777 == expected, f"{path}: {path.stat().st_mode & 0o777:o}"


def test_the_step_checkpoints_kept_are_exactly_the_last_k(tmp_path):
    folder = tmp_path / "checkpoints"
    for step in (15, 30, 40, 45):
        ckpt.save(folder / ckpt.STEP_CHECKPOINT.format(step), {"model": {}, "step": step})
    assert [p.name for p in ckpt.step_checkpoints(folder, up_to=40)] == [
        "step_00000015.pt", "step_00000030.pt", "step_00000040.pt"]
    ckpt.prune_step_checkpoints(folder, 2)
    assert [ckpt.step_of(p) for p in ckpt.step_checkpoints(folder)] == [40, 45]


# --- Snakemake killed under a running job ---------------------------------------------------------

def snakefile(tmp_path: Path, config: Path) -> Path:
    path = tmp_path / "Snakefile"
    path.write_text(
        "rule train:\n"
        '    output: "run/final.json"\n'
        '    log: "train.log"\n'
        f'    shell: "normlab train --config {config} --out run --resume > {{log}} 2>&1"\n'
    )
    return path


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def start_snakemake(tmp_path: Path, config: Path) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.Popen([str(BIN / "snakemake"), "--snakefile", str(snakefile(tmp_path, config)), "--cores", "1",
                             "--directory", str(tmp_path)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_a_job_stops_when_its_snakemake_is_killed_and_a_rerun_on_a_live_lock_says_so(tmp_path):
    long_run = run_config("classification", train={"max_steps": 100000, "log_every": 10, "checkpoint_every": 50})
    config = write_config(tmp_path, long_run)
    dag = start_snakemake(tmp_path, config)
    lock, deadline = tmp_path / "run" / ".lock", time.time() + 120
    while not (lock.exists() and lock.read_text().strip() and (tmp_path / "run" / "metrics.jsonl").exists()):
        assert dag.poll() is None and time.time() < deadline, dag.stdout.read() if dag.poll() else "timeout"
        time.sleep(0.2)
    job = int(lock.read_text().split()[0])
    dag.kill()  # kill -9: Snakemake cannot stop its jobs itself
    dag.wait()
    deadline = time.time() + 30
    while running(job):
        assert time.time() < deadline, "the job trained on after its Snakemake was killed"
        time.sleep(0.2)
    assert f"Snakemake (pid {dag.pid}), which started this job, has exited" in (tmp_path / "train.log").read_text()

    # a rerun while another process writes the folder: the job fails, its log says who holds the lock
    (tmp_path / "other").mkdir()
    holder = paused_writer(write_config(tmp_path / "other"), tmp_path / "held")
    try:
        rule = snakefile(tmp_path, config)
        text = rule.read_text().replace('"run/final.json"', '"held/final.json"').replace("--out run", "--out held")
        rule.write_text(text)
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        r = subprocess.run([str(BIN / "snakemake"), "--snakefile", str(rule), "--cores", "1", "--directory",
                            str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode != 0
        assert f"is being written by another normlab train (pid {holder.pid} " in (tmp_path / "train.log").read_text()
    finally:
        holder.kill()
        holder.wait()
