"""Run a workflow configuration's train and probe jobs, N at a time, on one machine without Snakemake.

For a lent GPU machine that has PyTorch but no Snakemake: it runs, for each cell, exactly the
commands of the workflow's `run_config`, `train` and `probe` rules (same run config, same paths, same
flags, built by the same functions of normlab.workflow; torchrun where a dataset has `gpus` > 1), N
cells at once, and writes a Snakemake-style benchmark TSV per train job.  Back on the workflow's
machine, unpack the archive into the repository and run Snakemake as usual: it finds the runs and
probes done and goes on with collect, stats, tables and figures.  `--dry-run` prints the commands.

    python tools/run_cells.py --configfile config/scale.yaml --jobs 14 --deadline-s 500 \\
        --datasets bible_es_en brown_pos --archive OUT/results.tar.gz

Cells are started seed by seed (every point's seed 1 first, so a deadline cuts whole seeds, not whole
points), longest first within a seed.  No cell is started that its estimated time would carry past
``--deadline-s``; the estimate (batches x layers x width) is calibrated on the cells already finished.
A cell whose run folder has final.json and whose probe folder has probe.json is skipped.  Paths are
relative to the working directory, as the workflow's: run it from the repository root (a config with
a `workdir` writes there).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"  # normlab from this source tree, as the workflow's rules take it
sys.path.insert(0, str(SRC))

from normlab import workflow  # noqa: E402
from normlab.atomic import atomic_write_text  # noqa: E402
from normlab.workflow import PATHS  # noqa: E402


def cost(run: dict) -> float:
    """Relative cost of a run: batches x layers x width (a calibration factor turns it into seconds)."""
    m = run["model"]
    return run["train"]["max_steps"] * run["train"]["update_freq"] * m["n_layers"] * max(m["d_model"] / 128, 0.5)


def done(cell: workflow.Cell) -> bool:
    return Path(PATHS.of("run_dir", cell), "final.json").exists() and Path(
        PATHS.of("probe_dir", cell), "probe.json").exists()


def commands(cfg: dict, cell: workflow.Cell, src: str | Path = SRC) -> list[str]:
    """The train and probe rules' shell commands for ``cell`` (workflows/train.smk, workflows/analysis.smk),
    without their log redirection: torchrun with one process per GPU where the cell's setting has more."""
    n_gpus = workflow.gpus(cfg)[cell.dataset]
    analysis = cfg["analysis"]
    return [
        workflow.train_command(workflow.normlab_command(src, max(n_gpus, 1)), PATHS.of("config", cell),
                               PATHS.of("run_dir", cell)),
        workflow.probe_command(workflow.normlab_command(src), PATHS.of("run_dir", cell), PATHS.of("probe_dir", cell),
                               analysis["probe_mode"], analysis["probe_batches"],
                               analysis["probe_population_tokens"], cfg["data_cache"]),
    ]


class Job:
    """One cell: its train command, then its probe command (``stage`` 0, 1), each with its log."""

    def __init__(self, cfg, cell, run):
        self.cell, self.run_id, self.estimate = cell, cell.run_id, cost(run)
        self.steps = commands(cfg, cell)
        self.logs = [Path(PATHS.of("train_log", cell)), Path(PATHS.of("probe_log", cell))]
        self.stage, self.proc, self.train_s, self.failed = 0, None, None, False

    def start_stage(self, env):
        log = self.logs[self.stage]
        log.parent.mkdir(parents=True, exist_ok=True)
        self.stage_started = time.perf_counter()
        with log.open("w") as handle:  # the rules' shell commands, run by the shell as Snakemake does
            self.proc = subprocess.Popen(["bash", "-c", self.steps[self.stage]], stdout=handle,
                                         stderr=subprocess.STDOUT, env=env)


def write_benchmark(cell: workflow.Cell, seconds: float, rusage) -> None:
    """A Snakemake benchmark TSV (the columns normlab collect reads; '-' where not measured)."""
    path = Path(PATHS.of("benchmark", cell))
    path.parent.mkdir(parents=True, exist_ok=True)
    hms = time.strftime("%H:%M:%S", time.gmtime(seconds))
    cpu = rusage.ru_utime + rusage.ru_stime
    path.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                    f"{seconds:.4f}\t{hms}\t{rusage.ru_maxrss / 1024:.2f}\t-\t-\t-\t-\t-\t-\t{cpu:.2f}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", required=True, nargs="+", help="workflow config (overlays merged in order)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--deadline-s", type=float, default=float("inf"), help="start no cell that would end later")
    parser.add_argument("--seconds-per-unit", type=float, default=1e-2, help="initial seconds per cost unit")
    parser.add_argument("--hard-stop-s", type=float, default=float("inf"),
                        help="kill the cells still running at this time and archive the finished ones")
    parser.add_argument("--datasets", nargs="+", help="only cells of these registered datasets")
    parser.add_argument("--archive", help="tar.gz or .tar.xz of the finished runs (no checkpoints), probes, logs")
    parser.add_argument("--dry-run", "-n", action="store_true",
                        help="print the commands of the cells still to run, one a line, and run nothing")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    raw = workflow.with_absolute_data_cache(workflow.read_config(args.configfile))
    cfg, cells, runs = workflow.load(raw, ROOT / "workflows/schemas/config.schema.yaml")
    workdir = Path(cfg.get("workdir") or ".")  # the config's outputs live there, as under Snakemake
    if not args.dry_run:
        workdir.mkdir(parents=True, exist_ok=True)
    started = workdir.is_dir()  # (a dry run of a config that never ran: nothing is done yet)
    if started:
        os.chdir(workdir)
    # the commands call `python` (and torchrun): this interpreter's
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    pending = []
    for cell in sorted(cells, key=lambda c: (c.seed, -cost(runs[c.run_id]))):
        if (args.datasets and cell.corpus not in args.datasets) or (started and done(cell)):
            continue
        pending.append(Job(cfg, cell, runs[cell.run_id]))
        if args.dry_run:
            continue
        config = Path(PATHS.of("config", cell))
        config.parent.mkdir(parents=True, exist_ok=True)
        text = workflow.run_config_yaml(runs[cell.run_id])
        if not config.exists() or config.read_text() != text:
            atomic_write_text(config, text)
    if args.dry_run:
        print("\n".join(step for job in pending for step in job.steps))
        return 0
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
                write_benchmark(job.cell, elapsed, rusage)
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
                for folder in (PATHS.of("run_dir", job.cell), PATHS.of("probe_dir", job.cell)):
                    for path in sorted(Path(folder).rglob("*")):
                        if path.is_file() and "checkpoints" not in path.parts:
                            tar.add(path)
                for path in [Path(PATHS.of("benchmark", job.cell)), *job.logs]:
                    tar.add(path)
            for job in failed:
                for path in job.logs:
                    if path.exists():
                        tar.add(path)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
