"""Provenance of a regenerated set of outputs: commit, configuration hash, machine, date, wall time.

`make run` calls `normlab provenance` after Snakemake succeeds, so `paper_tables/provenance.json`
always describes the run that produced the committed tables and figures.  A run that regenerated
nothing (Snakemake found every output up to date) leaves the existing file alone: its wall time would
describe a no-op.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from normlab.atomic import atomic_write_text

# the folders the workflow regenerates, at the top or under a config's workdir (scale_study/); a change
# there does not make the source tree "dirty"
OUTPUT_DIRS = ("figures", "paper_tables", "notebooks/executed", "results")
SCHEMA = Path("workflows/schemas/config.schema.yaml")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def source_state() -> dict:
    """The commit and whether tracked sources outside the output folders differ from it (the whole
    checkout's, from any folder in it)."""
    commit = _git("rev-parse", "HEAD")
    changed = _git("status", "--porcelain", "--untracked-files=no", "--", ":(top)",
                   *[f":(top,exclude,glob)**/{d}/**" for d in OUTPUT_DIRS])
    return {"commit": commit, "dirty": bool(changed) if changed is not None else None,
            "changed_files": changed.splitlines() if changed else []}


def config_digest(config_path: Path | list[Path]) -> dict:
    """The name of the configuration and a hash of what it resolves to (every cell's run config).
    Several files are merged in order, as Snakemake merges several ``--configfile`` (overlays)."""
    from normlab import workflow

    paths = [config_path] if isinstance(config_path, str | Path) else list(config_path)
    cfg, cells, runs = workflow.load_file(paths, SCHEMA)
    return {"path": " + ".join(map(str, paths)), "name": cfg["name"], "scale": cfg["scale"], "cells": len(cells),
            "resolved_sha256": resolved_sha256(cfg, runs)}


def resolved_sha256(cfg: dict, runs: dict) -> str:
    """The hash of a checked configuration and its cells' run configs (``normlab.workflow.load``): the
    provenance file's and every figure's (the workflow computes it at parse time)."""
    resolved = json.dumps({"config": cfg, "runs": runs}, sort_keys=True, default=str)
    return hashlib.sha256(resolved.encode()).hexdigest()


def machine() -> dict:
    import torch

    info = {"platform": platform.platform(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    try:
        with open("/proc/meminfo") as fh:
            info["memory_gb"] = round(int(fh.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return info


def rule_runtimes(benchmarks_csv: Path) -> dict | None:
    """Per-rule job count and summed / median / max seconds from the workflow's benchmark table."""
    if not benchmarks_csv.exists():
        return None
    import pandas as pd

    bench = pd.read_csv(benchmarks_csv)
    if bench.empty or not {"rule", "s"} <= set(bench.columns):  # columns: docs/analysis_contract.md
        return None
    return {str(rule): {"jobs": int(len(g)), "sum_s": round(float(g["s"].sum()), 1),
                        "median_s": round(float(g["s"].median()), 1), "max_s": round(float(g["s"].max()), 1)}
            for rule, g in bench.groupby("rule")}


def _utc(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")


def build(config_path: Path, started: float, finished: float, cores: int | None, results: Path) -> dict:
    return {
        "source": source_state(),
        "config": config_digest(config_path),
        "machine": machine(),
        "cores": cores,
        "started_utc": _utc(started),
        "finished_utc": _utc(finished),
        "wall_time_s": round(finished - started, 1),
        "rule_runtimes": rule_runtimes(results / "tidy" / "benchmarks.csv"),
        "remeasure": "make run (it rewrites this file after a run that regenerated the outputs)",
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, nargs="+", required=True,
                        help="the workflow configuration that ran (several: merged in order, as --configfile does)")
    parser.add_argument("--started", type=float, required=True, help="start of the run, seconds since the epoch")
    parser.add_argument("--cores", type=int, default=None, help="Snakemake's --cores")
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--marker", type=Path, default=Path("paper_tables/claims.md"),
                        help="an output the run regenerates; older than --started means nothing ran")
    parser.add_argument("--out", type=Path, default=Path("paper_tables/provenance.json"))
    parser.add_argument("--analysis-only", action="store_true",
                        help="only the analysis rules were re-run (snakemake --forcerun collect) on the "
                             "runs --out already describes: keep it, and add this commit as analysis_rerun")
    parser.add_argument("--note", help="free text kept in the record (e.g. where the training runs ran)")


def run(args: argparse.Namespace) -> int:
    if not args.marker.exists():
        print(f"normlab provenance: {args.marker} does not exist; did the workflow finish?", file=sys.stderr)
        return 2
    if args.marker.stat().st_mtime < args.started:
        print(f"normlab provenance: {args.marker} predates this run (nothing was regenerated); "
              f"{args.out} left as it is")
        return 0
    finished = time.time()
    if args.analysis_only:
        if not args.out.exists():
            print(f"normlab provenance: --analysis-only needs the runs' {args.out}", file=sys.stderr)
            return 2
        record = json.loads(args.out.read_text())
        record["analysis_rerun"] = {**source_state(), "finished_utc": _utc(finished),
                                    "wall_time_s": round(finished - args.started, 1),
                                    "what": "collect, stats, tables, claims, figures and notebooks re-run "
                                            "on the same training runs and probes"}
    else:
        record = build(args.config, args.started, finished, args.cores, args.results)
    if args.note:
        record["note"] = args.note
    atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")
    print(f"normlab provenance: wall time {record['wall_time_s']:.0f} s -> {args.out}")
    return 0
