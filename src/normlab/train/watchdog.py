"""A ``normlab train`` started by Snakemake stops when that Snakemake dies.

Without this, ``kill -9`` of Snakemake leaves its jobs training as orphans, and ``snakemake --unlock``
plus a rerun starts a second writer on each run folder (the run lock then refuses it, but the orphan
goes on spending the machine).

Why a watchdog thread and not ``prctl(PR_SET_PDEATHSIG)`` or polling ``os.getppid()``: both watch the
*direct* parent, and under Snakemake that is the ``bash -c "set -euo pipefail; normlab train ..."``
its ``shell:`` directive starts.  That bash survives a ``kill -9`` of Snakemake (it is waiting for
us), so neither would ever fire.  The thread instead finds the nearest ancestor that is a Snakemake
process (in ``/proc``, Linux) and polls it; when it has gone (or its PID was reused: the start time
is compared too) the job prints one line and exits.  The checkpoints make that safe: the rerun
resumes from the last one.  Elsewhere (no ``/proc``, no Snakemake ancestor) nothing is watched; a
SLURM job's nearest Snakemake is the one SLURM started on the node, so a batch job outlives the head.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

POLL_S = 1.0
EXIT_ORPHANED = 1


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of a process from /proc, or None when it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    return fields[0], int(fields[1]), int(fields[19])


def is_snakemake(argv: list[str]) -> bool:
    """Whether a command line runs Snakemake (``snakemake ...``, ``python .../bin/snakemake ...``,
    ``python -m snakemake ...``)."""
    head = argv[:3]
    return any(Path(a).name == "snakemake" for a in head) or any(
        a == "-m" and b == "snakemake" for a, b in zip(argv[:4], argv[1:5], strict=False)
    )


def snakemake_ancestor(pid: int | None = None) -> tuple[int, int] | None:
    """(pid, start time) of the nearest Snakemake process above ``pid`` (default: this process)."""
    stat = _stat(os.getpid() if pid is None else pid)
    while stat is not None and stat[1] > 1:
        parent = stat[1]
        try:
            argv = Path(f"/proc/{parent}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            return None
        stat = _stat(parent)
        if stat is not None and is_snakemake(argv):
            return parent, stat[2]
    return None


def alive(pid: int, start_time: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X") and stat[2] == start_time


def exit_with_snakemake() -> int | None:
    """Start the watchdog when this process runs under Snakemake; returns the watched PID (or None)."""
    found = snakemake_ancestor()
    if found is None:
        return None
    pid, start_time = found

    def watch():
        while alive(pid, start_time):
            time.sleep(POLL_S)
        print(f"normlab train: Snakemake (pid {pid}), which started this job, has exited; stopping here "
              "(a rerun resumes from the last checkpoint)", file=sys.stderr, flush=True)
        os._exit(EXIT_ORPHANED)

    threading.Thread(target=watch, name="normlab-snakemake-watchdog", daemon=True).start()
    return pid
