"""Run a workflow configuration's train and probe jobs, N at a time, on one machine without Snakemake.

For a lent GPU machine that has PyTorch but no Snakemake: it runs, for each cell, exactly the
commands of the workflow's `run_config`, `train` and `probe` rules (same run config, same paths, same
flags), N cells at once, and writes a Snakemake-style benchmark TSV per train job.  Back on the
workflow's machine, unpack the archive into the repository and run Snakemake as usual: it finds the
runs and probes done and goes on with collect, stats, tables and figures.

    python tools/run_cells.py --configfile config/scale.yaml --jobs 14 --deadline-s 500 \\
        --datasets bible_es_en brown_pos --archive OUT/results.tar.gz

Cells are started seed by seed (every point's seed 1 first, so a deadline cuts whole seeds, not whole
points), longest first within a seed.  No cell is started that its estimated time would carry past
``--deadline-s``; the estimate (steps x layers x width) is calibrated on the cells already finished.
A cell whose run folder has final.json and whose probe folder has probe.json is skipped.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from normlab import workflow
from normlab.atomic import atomic_write_text

RUN_DIR = "results/runs/{id}"
PROBE_DIR = "results/probes/{id}"


def cost(run: dict) -> float:
    """Relative cost of a run: steps x layers x width (a calibration factor turns it into seconds)."""
    m = run["model"]
    return run["train"]["max_steps"] * m["n_layers"] * max(m["d_model"] / 128, 0.5)


def done(run_id: str) -> bool:
    return Path(RUN_DIR.format(id=run_id), "final.json").exists() and Path(
        PROBE_DIR.format(id=run_id), "probe.json").exists()


def commands(cfg: dict, run_id: str, normlab: list[str]) -> list[list[str]]:
    """The train and probe rules' commands (workflows/train.smk, workflows/analysis.smk)."""
    config = f"results/configs/{run_id}.yaml"
    return [
        normlab + ["train", "--config", config, "--out", RUN_DIR.format(id=run_id), "--resume",
                   "--restart-if-changed"],
        normlab + ["probe", "--run", RUN_DIR.format(id=run_id), "--out", PROBE_DIR.format(id=run_id),
                   "--batches", str(cfg["analysis"]["probe_batches"]), "--population-tokens",
                   str(cfg["analysis"]["probe_population_tokens"]), "--cache", cfg["data_cache"]],
    ]


class Job:
    """One cell: its train command, then its probe command (``stage`` 0, 1), each with its log."""

    def __init__(self, cfg, run_id, run, normlab):
        self.run_id, self.estimate = run_id, cost(run)
        self.steps = commands(cfg, run_id, normlab)
        self.logs = [Path(f"logs/train/{run_id}.log"), Path(f"logs/probe/{run_id}.log")]
        self.stage, self.proc, self.train_s, self.failed = 0, None, None, False

    def start_stage(self, env):
        log = self.logs[self.stage]
        log.parent.mkdir(parents=True, exist_ok=True)
        self.stage_started = time.perf_counter()
        with log.open("w") as handle:
            self.proc = subprocess.Popen(self.steps[self.stage], stdout=handle, stderr=subprocess.STDOUT, env=env)


def write_benchmark(run_id: str, seconds: float, rusage) -> None:
    """A Snakemake benchmark TSV (the columns normlab collect reads; '-' where not measured)."""
    path = Path(f"results/benchmarks/train/{run_id}.tsv")
    path.parent.mkdir(parents=True, exist_ok=True)
    hms = time.strftime("%H:%M:%S", time.gmtime(seconds))
    cpu = rusage.ru_utime + rusage.ru_stime
    path.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                    f"{seconds:.4f}\t{hms}\t{rusage.ru_maxrss / 1024:.2f}\t-\t-\t-\t-\t-\t-\t{cpu:.2f}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", required=True)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--deadline-s", type=float, default=float("inf"), help="start no cell that would end later")
    parser.add_argument("--seconds-per-unit", type=float, default=1e-2, help="initial seconds per cost unit")
    parser.add_argument("--hard-stop-s", type=float, default=float("inf"),
                        help="kill the cells still running at this time and archive the finished ones")
    parser.add_argument("--datasets", nargs="+", help="only cells of these registered datasets")
    parser.add_argument("--archive", help="tar.gz or .tar.xz of the finished runs (no checkpoints), probes, logs")
    args = parser.parse_args()
    t0 = time.perf_counter()
    cfg, cells, runs = workflow.load_file(args.configfile, "workflows/schemas/config.schema.yaml")
    normlab = [sys.executable, "-m", "normlab"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    pending = []
    for cell in sorted(cells, key=lambda c: (c.seed, -cost(runs[c.run_id]))):
        if (args.datasets and cell.corpus not in args.datasets) or done(cell.run_id):
            continue
        config = Path(f"results/configs/{cell.run_id}.yaml")
        config.parent.mkdir(parents=True, exist_ok=True)
        text = workflow.run_config_yaml(runs[cell.run_id])
        if not config.exists() or config.read_text() != text:
            atomic_write_text(config, text)
        pending.append(Job(cfg, cell.run_id, runs[cell.run_id], normlab))
    print(f"{len(pending)} cells to run, {args.jobs} at a time", flush=True)
    rate, finished, failed, running, skipped = args.seconds_per_unit, [], [], [], []
    while pending or running:
        now = time.perf_counter() - t0
        while pending and len(running) < args.jobs:
            job = pending.pop(0)
            if now + job.estimate * rate > args.deadline_s:
                skipped.append(job)
                continue
            job.start_stage(env)
            running.append(job)
        time.sleep(0.5)
        if time.perf_counter() - t0 > args.hard_stop_s:
            for job in running:
                job.proc.kill()
                job.proc.wait()
                print(f"killed at the hard stop: {job.run_id}", flush=True)
            skipped += running + pending
            running, pending = [], []
            break
        for job in list(running):
            pid, status, rusage = os.wait4(job.proc.pid, os.WNOHANG)
            if pid == 0:  # still running
                continue
            elapsed = time.perf_counter() - job.stage_started
            if os.waitstatus_to_exitcode(status) != 0:
                job.failed = True
                print(f"FAILED {job.run_id} ({['train', 'probe'][job.stage]}; log {job.logs[job.stage]})", flush=True)
            elif job.stage == 0:
                write_benchmark(job.run_id, elapsed, rusage)
                job.train_s = elapsed
                job.stage = 1
                job.start_stage(env)
                continue
            running.remove(job)
            if job.failed:
                failed.append(job)
            else:
                finished.append(job)
                total = sum(j.train_s for j in finished)
                rate = max(rate, total / sum(j.estimate for j in finished)) if len(finished) < 3 else \
                    total / sum(j.estimate for j in finished)
            print(f"[{time.perf_counter() - t0:6.0f}s] done {len(finished)}, running {len(running)}, "
                  f"pending {len(pending)}, skipped {len(skipped)}: {job.run_id} train {job.train_s or 0:.0f}s",
                  flush=True)
    print(f"finished {len(finished)}, failed {len(failed)}, "
          f"not started (deadline) {len(skipped)}; {rate:.2e} s per cost unit", flush=True)
    for job in skipped:
        print(f"not started: {job.run_id} (estimated {job.estimate * rate:.0f} s)")
    if args.archive:
        with tarfile.open(args.archive, "w:xz" if args.archive.endswith(".xz") else "w:gz") as tar:
            for job in finished:
                for folder in (RUN_DIR.format(id=job.run_id), PROBE_DIR.format(id=job.run_id)):
                    for path in sorted(Path(folder).rglob("*")):
                        if path.is_file() and "checkpoints" not in path.parts:
                            tar.add(path)
                for path in [Path(f"results/benchmarks/train/{job.run_id}.tsv"), *job.logs]:
                    tar.add(path)
            for job in failed:
                for path in job.logs:
                    if path.exists():
                        tar.add(path)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
