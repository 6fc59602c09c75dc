"""The benchmark scripts still run (they are not timed tests: a tiny shape, one round, output checked)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from normlab.norms import NORMS

ROOT = Path(__file__).resolve().parents[1]


def test_bench_norms_prints_every_norm_and_the_reference_rows():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_norms.py"), "--batch", "2", "--time", "8", "--dim", "16"]
    r = subprocess.run([*cmd, "--repeats", "2", "--warmup", "1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ratios = dict(re.findall(r"^\| `([^`]+)` \| ([0-9.]+) \|(?: [0-9]+ \|)?$", r.stdout, flags=re.M))
    for name in (*NORMS, "bn (eager)", "rbn (eager)", "torch BatchNorm1d (no mask)"):
        assert name in ratios, f"no row for {name!r}:\n{r.stdout}"
    assert float(ratios["ln"]) == 1.0  # the table is relative to ln (the step table's ln row too)
    assert re.search(r"Online TID recording .*: [0-9.]+ % of a training step", r.stdout), r.stdout
