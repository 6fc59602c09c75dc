"""Wall time per workflow rule, from a Snakemake log: jobs, the sum of their wall times, the median job.

    python tools/rule_times.py .snakemake/log/<the run's>.log

A job's wall time runs from the time stamp above its ``rule NAME:`` block to the one above its
``Finished jobid: N`` line (Snakemake 9's log format), so jobs that ran side by side each count in
full; the last line is the span of the whole log.  Only ``train`` has benchmark files
(``paper_tables/runtime.md``); this covers every rule.  docs/default_sizing.md quotes its output.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
RULE = re.compile(r"^(?:local)?rule (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)")


def rule_times(lines) -> tuple[dict[str, list[float]], float]:
    """Wall seconds of every finished job, by rule, and the span from the first to the last time stamp."""
    stamp = first = None
    started: dict[str, datetime] = {}
    rule = None
    times: dict[str, list[float]] = {}
    for line in lines:
        if m := STAMP.match(line):
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
            first = first or stamp
        elif m := RULE.match(line):
            rule = m.group(1)
        elif (m := JOBID.match(line)) and rule:
            started[m.group(1)], rule = stamp, None
        elif (m := FINISHED.match(line)) and m.group(1) in started:
            times.setdefault(m.group(2), []).append((stamp - started[m.group(1)]).total_seconds())
    return times, (stamp - first).total_seconds() if first else 0.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path, help="a Snakemake log (.snakemake/log/*.snakemake.log)")
    args = parser.parse_args(argv)
    try:
        times, span = rule_times(args.log.read_text().splitlines())
    except OSError as err:
        sys.exit(f"rule_times: cannot read {args.log}: {err.strerror}; give a log from .snakemake/log/")
    if not times:
        sys.exit(f"rule_times: {args.log} has no finished job in Snakemake 9's format "
                 "('Finished jobid: N (Rule: NAME)'); give the log of a run that finished jobs")
    print("| rule | jobs | wall s, sum of jobs | median per job |\n|---|---|---|---|")
    for name, secs in times.items():
        print(f"| `{name}` | {len(secs)} | {sum(secs):,.0f} | {statistics.median(secs):,.0f} |")
    print(f"| **the log** (first to last time stamp) | {sum(map(len, times.values()))} | **{span:,.0f} s** | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
