"""Run the project's Snakefile from tests: in a scratch working directory, with the venv on PATH."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# the jobs downstream of the runs: one each, a notebook per analysis notebook, and the default target
ANALYSIS_JOBS = {"collect": 1, "baselines": 1, "stats": 1, "tables": 1, "claims": 1, "figures": 1, "notebook": 4,
                 "all": 1}
# a configuration with a `sweep` (the scale study) adds its table-and-figures job and its notebook
SWEEP_ANALYSIS_JOBS = {**ANALYSIS_JOBS, "scale_study": 1, "notebook": 5}


def snakemake(
    *args: str, workdir: Path | None = None, timeout: int = 1800, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`snakemake` with this repository's Snakefile; outputs go to `workdir` (default: the repository);
    ``env``: variables set (or, empty, cleared) on top of this process's environment."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})}
    cmd = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile")]
    if workdir is not None:
        cmd += ["--directory", str(workdir)]
    return subprocess.run([*cmd, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def job_counts(output: str) -> dict[str, int]:
    """The "Job stats" table of a (dry) run: rule -> number of jobs."""
    table = output.split("Job stats:", 1)[1] if "Job stats:" in output else ""
    counts = {}
    for line in table.splitlines()[3:]:
        m = re.fullmatch(r"\s*(\S+)\s+(\d+)\s*", line)
        if not m:
            break
        counts[m.group(1)] = int(m.group(2))
    return counts
